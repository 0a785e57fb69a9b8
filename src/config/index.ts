export { parseConfig, loadConfigFile, type LoadedConfig } from './load.js';
export { parseDuration } from './duration.js';
export type * from './schema.js';
export type * from './sources.js';
