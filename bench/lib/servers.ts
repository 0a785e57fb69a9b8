/**
 * The bench's own servers (bench/servers/*.ts), each spawned as `node dist/bench/servers/<name>.js`.
 */
import { benchScript } from './paths.js';
import { freePort, spawnNode, waitForHttp, type Child } from './proc.js';

export interface Helper {
  child: Child;
  url: string;
}

/** Spawns a helper on a free 127.0.0.1 port and waits until it answers HTTP. */
export async function startHelper(
  name: string,
  script: string,
  extra: readonly string[] = [],
  cpus?: string,
): Promise<Helper> {
  const port = await freePort();
  const child = spawnNode(
    name,
    benchScript(script),
    ['--port', String(port), ...extra],
    cpus ? { cpus } : {},
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(child, `${url}/`, 10_000);
  return { child, url };
}

/** The app behind every proxy (bench/servers/upstream.ts). */
export function startUpstream(cpus?: string): Promise<Helper> {
  return startHelper('upstream', 'servers/upstream.js', [], cpus);
}
