import { createServer, type Server } from 'node:http';
import { needTool } from '../../test/support/tools.js';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureWithWrk, parseWrkReport, wrkUnavailableReason } from '../lib/wrk.js';

// Printed by wrk 4.1.0 (Debian) against a server answering 500.
const FAILING_RUN = `Running 1s test @ http://127.0.0.1:18999/bad
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   213.15us  498.14us   6.30ms   94.57%
    Req/Sec    37.58k    18.43k   54.03k    72.73%
  Latency Distribution
     50%   88.00us
     75%  149.00us
     90%  387.00us
     99%    2.89ms
  40949 requests in 1.10s, 5.58MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 40949
Requests/sec:  37218.51
Transfer/sec:      5.08MB
`;

describe('the wrk load driver of the benches', () => {
  it('reads requests, latency percentiles, errors and failed responses from a wrk report', () => {
    expect(parseWrkReport(FAILING_RUN)).toEqual({
      requests: 40949,
      seconds: 1.1,
      p50: 0.088,
      p99: 2.89,
      errors: 4,
      timeouts: 2,
      non2xx: 40949,
    });
  });

  it('refuses output that is not a wrk report instead of reading zeros', () => {
    expect(() => parseWrkReport('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(
      /unrecognised wrk output/,
    );
  });

  describe.skipIf(!needTool('wrk', 'wrk', wrkUnavailableReason() === undefined))(
    'against a real server',
    () => {
      let server: Server;
      let url: string;
      const seen: (string | undefined)[] = [];

      beforeAll(async () => {
        server = createServer((req, res) => {
          if (seen.length < 5) seen.push(req.headers.authorization);
          res.end('ok');
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      });
      afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

      it('sends the target headers and charges the watched process its CPU per request', async () => {
        expect(wrkUnavailableReason()).toBeUndefined();
        const m = await measureWithWrk(
          { url, headers: { authorization: 'Bearer t0k' } },
          { connections: 2, pipelining: 1, duration: 1, warmup: 0 },
          [{ label: 'server', pid: process.pid }],
        );
        expect(seen[0]).toBe('Bearer t0k');
        expect(m.requests).toBeGreaterThan(100);
        expect(m.non2xx + m.errors + m.timeouts).toBe(0);
        expect(m.p50).toBeGreaterThan(0);
        expect(m.cpuPerRequest.server).toBeGreaterThan(0);
        expect(m.systemPerRequest.server).toBeGreaterThan(0);
        expect(m.systemPerRequest.server).toBeLessThan(m.cpuPerRequest.server as number);
      });
    },
  );
});
