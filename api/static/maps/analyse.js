// Placeholder until the analyse tool lands (see maps.js): installs nothing.
export function install() {}
