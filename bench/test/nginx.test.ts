import { createServer, type Server } from 'node:http';
import { needTool } from '../../test/support/tools.js';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxUnavailableReason, startNginx, type BenchNginx } from '../lib/nginx.js';
import { cpuTimes } from '../lib/proc.js';

describe.skipIf(!needTool('nginx', 'nginx-light', nginxUnavailableReason() === undefined))(
  'the nginx calibration proxy of the benches',
  () => {
    let upstream: Server;
    let nginx: BenchNginx | undefined;
    const seen: { url: string | undefined; authorization: string | undefined }[] = [];

    beforeAll(async () => {
      upstream = createServer((req, res) => {
        seen.push({ url: req.url, authorization: req.headers.authorization });
        res.end('from upstream');
      });
      await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      await nginx?.stop();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    });

    it('proxies to the upstream through one worker whose CPU time can be read', async () => {
      expect(nginxUnavailableReason()).toBeUndefined();
      nginx = await startNginx(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
      const res = await fetch(`${nginx.url}/x?y=1`, { headers: { authorization: 'Bearer b' } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('from upstream');
      expect(seen.at(-1)).toEqual({ url: '/x?y=1', authorization: 'Bearer b' });
      expect(nginx.workerPid).not.toBe(nginx.master.pid);
      expect(cpuTimes(nginx.workerPid).user).toBeGreaterThanOrEqual(0);
    });

    it('stops master and worker', async () => {
      const worker = (nginx as BenchNginx).workerPid;
      await (nginx as BenchNginx).stop();
      nginx = undefined;
      expect(() => process.kill(worker, 0)).toThrow();
    });
  },
);
