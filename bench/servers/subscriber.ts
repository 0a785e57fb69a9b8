/**
 * The revocation bench's pub/sub baseline, in a process of its own as replica B is: subscribes to a
 * channel whose messages are publication stamps (wall-clock ms, sub-ms precision) and records the lag
 * of each on arrival. On `done` it prints `{"p50":..,"p99":..,"count":..}` (ms), writes every lag (ms,
 * sorted) as a JSON array to `--out` when given, and exits.
 *
 * Usage: node dist/bench/servers/subscriber.js --port <redis port> --channel <name> [--out <file>]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: { port: { type: 'string' }, channel: { type: 'string' }, out: { type: 'string' } },
});
if (!values.port || !values.channel) throw new Error('--port and --channel are required');

const lags: number[] = [];
const sub = new Redis({ host: '127.0.0.1', port: Number(values.port) });
sub.on('message', (_channel: string, message: string) => {
  if (message !== 'done') {
    lags.push(performance.timeOrigin + performance.now() - Number(message));
    return;
  }
  lags.sort((x, y) => x - y);
  const at = (p: number) => lags[Math.min(lags.length - 1, Math.ceil((p / 100) * lags.length) - 1)];
  if (values.out) writeFileSync(values.out, JSON.stringify(lags));
  console.log(JSON.stringify({ p50: at(50), p99: at(99), count: lags.length }));
  sub.disconnect();
});
await sub.subscribe(values.channel);
console.log('subscribed');
