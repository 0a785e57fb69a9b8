/**
 * The presets of config/presets/ as a user runs them: the file read by `loadConfigFile` (the CLI's own
 * loader) with `UPSTREAM` and `SESSIONGATE_SECRET` in the environment it substitutes, then a real
 * gateway started from that config. Only the two listeners are moved to 127.0.0.1:0; nothing else of
 * the preset is changed, so a test proves the file as shipped.
 *
 *   const gw = await startPresetGateway('php', app.url);   // inside a test: closed when it finishes
 *   await gw.live('alice');                                  // ids of alice's live sessions
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { loadConfigFile, type LoadedConfig } from '../../src/config/load.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { captureLogs, TEST_SECRET, type CapturedLogs } from './gateway.js';

export const PRESETS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'config',
  'presets',
);

/** The preset `config/presets/<name>.yaml`, loaded as `sessiongate --config` loads it. */
export function loadPreset(name: string, upstream: string): LoadedConfig {
  return loadConfigFile(path.join(PRESETS_DIR, `${name}.yaml`), {
    UPSTREAM: upstream,
    SESSIONGATE_SECRET: TEST_SECRET,
  });
}

export interface PresetGateway {
  readonly gateway: Gateway;
  /** The proxy's origin. */
  readonly url: string;
  readonly logs: CapturedLogs;
  /** What `sessiongate check` would warn about. */
  readonly warnings: LoadedConfig['warnings'];
  /** Ids of the user's live sessions, as the store has them (a login registered is one more). */
  live(user: string): Promise<string[]>;
}

/**
 * A gateway running the preset in front of `upstream`. Call it inside a test: the gateway closes when
 * that test finishes, so every test starts from an empty store.
 */
export async function startPresetGateway(name: string, upstream: string): Promise<PresetGateway> {
  const { config: loaded, warnings } = loadPreset(name, upstream);
  const loopback = { host: '127.0.0.1', port: 0 };
  const config = { ...loaded, listen: loopback, admin: { ...loaded.admin, listen: loopback } };
  const { logger, logs } = captureLogs(config.log.level);
  const gateway = await createGateway(config, { defaultMetrics: false, logger });
  onTestFinished(() => gateway.close(200));
  await gateway.listen();
  return {
    gateway,
    url: gateway.url,
    logs,
    warnings,
    live: async (user) => (await gateway.sessions.listSessions(user)).map((s) => s.id),
  };
}

/** The `error` code of a gateway rejection answered as JSON (undefined for any other body). */
export async function rejectionCode(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as { error?: unknown }).error;
  } catch {
    return undefined;
  }
}
