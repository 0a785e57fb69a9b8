/**
 * The paced background load of bench/lib/paced.ts in a process of its own, so that what it measures is
 * the gateways' latency and not the event loop of the bench that drives a storm beside it (admin calls,
 * a channel counter, a store client: all in the parent). Started by `pacedLoadProcess` with an IPC
 * channel: it gets `{urls, tokens, rate}` first, answers `samples` with every sample so far (`at` in
 * epoch ms, so the parent can place it on its own clock) and `stop` with the last ones, then exits.
 */
import { pacedLoad, type PacedLoad } from '../lib/paced.js';

interface Start {
  readonly type: 'start';
  readonly urls: string[];
  readonly tokens: string[];
  readonly rate: number;
}

type Command = Start | { readonly type: 'samples' } | { readonly type: 'stop' };

const send = (message: unknown): void => void process.send?.(message);
let load: PacedLoad | undefined;

const samples = () =>
  (load?.samples ?? []).map((s) => ({ at: performance.timeOrigin + s.at, ms: s.ms, status: s.status }));

process.on('message', (command: Command) => {
  if (command.type === 'start') {
    load = pacedLoad(command.urls, command.tokens, command.rate);
    send({ type: 'started' });
  } else if (command.type === 'samples') {
    send({ type: 'samples', samples: samples() });
  } else {
    void (load?.stop() ?? Promise.resolve()).then(() => {
      // Disconnected only once the last reply is out: a send is asynchronous.
      process.send?.({ type: 'samples', samples: samples() }, undefined, {}, () => process.disconnect());
    });
  }
});
