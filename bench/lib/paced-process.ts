/**
 * `pacedLoad` (paced.ts) run in a child process (servers/paced-client.ts): the same samples, with `at`
 * on this process's performance.now() clock.
 */
import { fork } from 'node:child_process';
import type { PacedSample } from './paced.js';
import { benchScript } from './paths.js';

export interface PacedLoadProcess {
  /** Every sample so far. */
  samples(): Promise<PacedSample[]>;
  /** Stops sending; resolves with every sample once the requests in flight have answered. */
  stop(): Promise<PacedSample[]>;
}

interface Reply {
  readonly type: 'started' | 'samples';
  readonly samples?: PacedSample[];
}

export async function pacedLoadProcess(
  urls: readonly string[],
  tokens: readonly string[],
  rate: number,
): Promise<PacedLoadProcess> {
  const child = fork(benchScript('servers/paced-client.js'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ask = (command: object, expect: Reply['type']): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const onMessage = (reply: Reply): void => {
        if (reply.type !== expect) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(reply);
      };
      const onExit = (code: number | null): void =>
        reject(new Error(`the paced load process exited (${code}) before answering ${expect}`));
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(command);
    });
  const onOurClock = (reply: Reply): PacedSample[] =>
    (reply.samples ?? []).map((s) => ({ ...s, at: s.at - performance.timeOrigin }));
  await ask({ type: 'start', urls, tokens, rate }, 'started');
  return {
    samples: async () => onOurClock(await ask({ type: 'samples' }, 'samples')),
    stop: async () => {
      const last = onOurClock(await ask({ type: 'stop' }, 'samples'));
      await exited;
      return last;
    },
  };
}
