// Placeholder until the measure tool lands (see maps.js): installs nothing.
export function install() {}
