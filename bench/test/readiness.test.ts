import { describe, expect, it } from 'vitest';
import { ChildNotReadyError, freePort, spawnChild, waitForOk } from '../lib/proc.js';

/** A server in a process of its own whose /readyz answers 503 the first `notReady` times, then 200. */
const server = (port: number, notReady: number) => `
const http = require('node:http');
let asked = 0;
http.createServer((req, res) => {
  if (req.url === '/stats') return res.end(String(asked));
  asked++;
  res.statusCode = asked <= ${notReady} ? 503 : 200;
  res.end(res.statusCode === 200 ? 'ready' : 'not ready');
}).listen(${port}, '127.0.0.1');
`;

describe('waiting for a gateway to be ready', () => {
  it('waits past 503 answers from /readyz and returns on the first 200', async () => {
    const port = await freePort();
    const child = spawnChild('readyz-server', process.execPath, ['-e', server(port, 3)]);
    try {
      await waitForOk(child, `http://127.0.0.1:${port}/readyz`, 10_000);
      const asked = await (await fetch(`http://127.0.0.1:${port}/stats`)).text();
      expect(asked).toBe('4');
    } finally {
      await child.stop();
    }
  });

  it('fails with what /readyz last answered when it never becomes ready', async () => {
    const port = await freePort();
    const child = spawnChild('readyz-server', process.execPath, ['-e', server(port, 1_000_000)]);
    try {
      const wait = waitForOk(child, `http://127.0.0.1:${port}/readyz`, 1500);
      await expect(wait).rejects.toThrow(ChildNotReadyError);
      await expect(wait).rejects.toThrow(/answered 503 not ready/);
    } finally {
      await child.stop();
    }
  });
});
