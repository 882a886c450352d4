// Placeholder until the search tool lands (see maps.js): installs nothing.
export function install() {}
