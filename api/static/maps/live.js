// Placeholder until the live tool lands (see maps.js): installs nothing.
export function install() {}
