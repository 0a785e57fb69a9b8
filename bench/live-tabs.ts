/**
 * Open tabs under `ui.liveSignOut` (issue 17): the gateway's memory per open live sign-out event
 * stream, with 10,000 of them (10,000 users, one tab each) held by one gateway on the memory store, and
 * how fast a revocation still reaches its tab with that many open (the index by token id: no scan).
 * The gateway runs as the shipped process (dist/src/cli.js); the streams are real sockets from this
 * process. Memory is the gateway's RSS (/proc) and its V8 heap used plus external (its /metrics),
 * before and after the streams open, each the lowest of a few samples (no GC can be forced in it).
 *
 *   npm --prefix bench run live-tabs -- [--tabs 10000] [--revocations 200]
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { runIfMain } from './lib/driver.js';
import { cleanupConfigs, startGateway, type Gateway } from './lib/gateway.js';
import { login, mapLimit } from './lib/http.js';
import { defaultGatewayCli, defaultResultsFile } from './lib/paths.js';
import { rssBytes } from './lib/proc.js';
import { int, machine, machineLines, mib, num, percentile, recordResults, table } from './lib/report.js';
import { startUpstream } from './lib/servers.js';

/** One open tab: its stream, and when it was told its session ended. */
interface Tab {
  readonly req: ClientRequest;
  ended: Promise<number>;
}

/** Opens the event stream of `token`; resolves once the gateway's first bytes arrived (it is registered). */
function openTab(gw: Gateway, token: string): Promise<Tab> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${gw.url}/.sessiongate/live`);
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      agent: false,
      headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    });
    req.once('error', reject);
    req.once('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) return reject(new Error(`the stream answered ${res.statusCode}`));
      let text = '';
      let endedAt: ((t: number) => void) | undefined;
      const tab: Tab = { req, ended: new Promise((r) => (endedAt = r)) };
      res.on('data', (c: Buffer) => {
        const first = text.length === 0;
        text += c.toString();
        if (first) resolve(tab);
        if (text.includes('event: ended')) endedAt?.(performance.now());
      });
    });
    req.end();
  });
}

async function scrape(gw: Gateway): Promise<Map<string, number>> {
  const res = await request(`${gw.adminUrl}/metrics`);
  const text = await res.body.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(sessiongate_[a-z_]+) ([0-9.e+-]+)$/.exec(line);
    if (m?.[1] && m[2]) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** The lowest of a few samples, 500 ms apart: RSS and heap (used + external) of the gateway. */
async function memory(gw: Gateway): Promise<{ rss: number; heap: number }> {
  let rss = Infinity;
  let heap = Infinity;
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const m = await scrape(gw);
    rss = Math.min(rss, rssBytes(gw.child.pid));
    heap = Math.min(
      heap,
      (m.get('sessiongate_nodejs_heap_size_used_bytes') ?? NaN) +
        (m.get('sessiongate_nodejs_external_memory_bytes') ?? NaN),
    );
  }
  return { rss, heap };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { tabs: { type: 'string', default: '10000' }, revocations: { type: 'string', default: '200' } },
  });
  const tabs = Number(values.tabs);
  const revocations = Math.min(tabs, Number(values.revocations));
  const upstream = await startUpstream();
  const gw = await startGateway('live-tabs', defaultGatewayCli, upstream.url, {
    ui: { liveSignOut: true },
    cache: { max: tabs * 2 },
  }).catch(async (err: unknown) => {
    await upstream.child.stop();
    throw err;
  });
  const agent = new Agent({ connections: 32 });
  const open: Tab[] = [];
  try {
    const users = Array.from({ length: tabs }, (_, i) => `tab-user-${i}`);
    const tokens = await mapLimit(
      users,
      32,
      async (u) => (await login(gw.url, u, { dispatcher: agent })).token,
    );
    const before = await memory(gw);
    const t0 = performance.now();
    open.push(...(await mapLimit(tokens, 200, (t) => openTab(gw, t))));
    const openMs = performance.now() - t0;
    const after = await memory(gw);
    const streams = (await scrape(gw)).get('sessiongate_live_signout_streams');
    if (streams !== tabs) throw new Error(`the gateway reports ${streams} open streams, expected ${tabs}`);

    // Revocations with every tab open: a new login of a user ends its tab's stream.
    // Timed from the login's request: the event is written when the login commits, before its
    // response is released, so it usually arrives first.
    const delays: number[] = [];
    let beforeResponse = 0;
    for (let i = 0; i < revocations; i++) {
      const tab = open[i] as Tab;
      const sent = performance.now();
      const { headersAt } = await login(gw.url, users[i] as string, { dispatcher: agent });
      const endedAt = await tab.ended;
      delays.push(endedAt - sent);
      if (endedAt <= headersAt) beforeResponse++;
    }
    const sorted = [...delays].sort((a, b) => a - b);
    const perStream = (a: number, b: number) => `${int((b - a) / tabs)} B`;
    const section = [
      `## ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} — open tabs under ui.liveSignOut (bench/live-tabs.ts)`,
      '',
      ...machineLines(machine()),
      `- one gateway (memory store, \`ui.liveSignOut: true\`) started through dist/src/cli.js; ${int(tabs)} users signed in, one event stream each (HTTP/1.1, a socket per stream, bearer token), opened 200 at a time from the bench process`,
      '',
      table(
        ['measure', 'value'],
        [
          ["open streams (the gateway's `sessiongate_live_signout_streams`)", int(streams)],
          ['time to open them all', `${num(openMs / 1000, 1)} s`],
          ['gateway RSS before / after', `${mib(before.rss)} / ${mib(after.rss)}`],
          ['gateway heap (used + external) before / after', `${mib(before.heap)} / ${mib(after.heap)}`],
          ['RSS per open stream', perStream(before.rss, after.rss)],
          ['heap per open stream', perStream(before.heap, after.heap)],
          [
            `a new login's request to the old tab's \`ended\` event, ${revocations} in turn, all tabs open: p50 / p99 / max ms`,
            `${num(percentile(sorted, 50), 2)} / ${num(percentile(sorted, 99), 2)} / ${num(sorted.at(-1), 2)}`,
          ],
          ['of those, the event before the login response', `${beforeResponse} of ${revocations}`],
        ],
      ),
      '',
      'The per-stream figure is the whole cost of a held HTTP/1.1 response in Node (its socket, parser,',
      "IncomingMessage and ServerResponse) plus the gateway's own: an entry in the token-id index of",
      'long-lived connections, a closure, and a Set entry for the one shared heartbeat timer.',
    ].join('\n');
    console.log(section);
    const file = defaultResultsFile('live-tabs');
    await recordResults(file, 'live-tabs', `${section}\n`);
    console.log(`\nwritten to ${file}`);
  } finally {
    for (const t of open) t.req.destroy();
    await agent.close();
    await gw.stop();
    await upstream.child.stop();
    await cleanupConfigs();
  }
}

runIfMain(import.meta.url, main);
