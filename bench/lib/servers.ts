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

/** The passthrough proxies every hot-path bench measures next to the gateway, with their one-line description. */
export const passthroughs = [
  {
    name: 'undici-floor',
    script: 'servers/undici-floor.js',
    what: 'node:http + undici Pool.dispatch passthrough, no checks (the Node floor)',
  },
  { name: 'http-proxy', script: 'servers/http-proxy.js', what: 'http-proxy 1.18 with a keep-alive agent' },
  {
    name: 'http-proxy-3',
    script: 'servers/http-proxy-3.js',
    what: 'http-proxy-3 1.23 (the maintained rewrite) with a keep-alive agent',
  },
] as const;
