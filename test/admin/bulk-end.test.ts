/**
 * `DELETE /admin/sessions`: a mass revocation in one call, its users named in the query or a JSON body.
 * Real gateways; on Redis, a second replica refuses every ended token too.
 */
import { describe, expect, it } from 'vitest';
import { bearer, get, startGateway, testClock, type TestGateway } from '../support/gateway.js';
import { haveRedis } from '../support/redis.js';
import { needTool } from '../support/tools.js';
import { ownRedis, replicasOn } from '../sessions/replicas.js';

interface BulkAnswer {
  users: { user: string; ended: string[] }[];
  ended: number;
}

function bulk(gw: TestGateway, query: string, body?: unknown): Promise<Response> {
  return gw.admin(`/admin/sessions${query}`, {
    method: 'DELETE',
    ...(body !== undefined && {
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  });
}

async function statusWith(gw: TestGateway, token: string): Promise<number> {
  const res = await get(`${gw.url}/api/me`, bearer(token));
  await res.arrayBuffer();
  return res.status;
}

describe('DELETE /admin/sessions', () => {
  it('ends every session of the users named in the query, and no one else', async () => {
    const gw = await startGateway({ sessions: { limit: 2 } });
    const ann1 = await gw.loginJson('ann');
    const ann2 = await gw.loginJson('ann');
    const ben = await gw.loginJson('ben');
    const cat = await gw.loginJson('cat');

    const res = await bulk(gw, '?user=ann&user=ben&user=nobody');
    expect(res.status).toBe(200);
    const answer = (await res.json()) as BulkAnswer;
    expect(answer.ended).toBe(3);
    expect(answer.users.map((u) => [u.user, u.ended.length])).toEqual([
      ['ann', 2],
      ['ben', 1],
      ['nobody', 0],
    ]);
    for (const t of [ann1, ann2, ben]) expect(await statusWith(gw, t.token)).toBe(401);
    expect(await statusWith(gw, cat.token)).toBe(200);
    expect(gw.logs.audit('session.ended').filter((l) => l.reason === 'ended_by_admin')).toHaveLength(3);
  });

  it('takes a long list as a JSON body, each user once however often named', async () => {
    const gw = await startGateway();
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const tokens = await Promise.all(users.map(async (u) => (await gw.loginJson(u)).token));

    const res = await bulk(gw, '?user=user-0', { users: [...users, 'user-1'] });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as BulkAnswer;
    expect(answer.ended).toBe(200);
    expect(answer.users.map((u) => u.user)).toEqual(users);
    const statuses = await Promise.all(tokens.map((t) => statusWith(gw, t)));
    expect(statuses.filter((s) => s === 401)).toHaveLength(200);
  });

  it('finds users as the login rules normalise them', async () => {
    const gw = await startGateway({
      login: [
        {
          match: 'POST /api/login',
          token: 'json:accessToken',
          user: 'json:user.id',
          normalize: ['lowercase'],
        },
      ],
    });
    const { token } = await gw.loginJson('Dora');
    const answer = (await (await bulk(gw, '?user=DORA')).json()) as BulkAnswer;
    expect(answer.users).toEqual([{ user: 'dora', ended: [expect.any(String)] }]);
    expect(await statusWith(gw, token)).toBe(401);
  });

  it('answers 400 naming the problem when no user, an empty name or a malformed body is given', async () => {
    const gw = await startGateway();
    const { token } = await gw.loginJson('eve');
    for (const [query, body] of [
      ['', undefined],
      ['?user=', undefined],
      ['', '{"users": "eve"}'],
      ['', '{"users": [1]}'],
      ['', 'not json'],
    ] as const) {
      const res = await bulk(gw, query, body);
      expect(res.status, `${query} ${String(body)}`).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'SG_ERR_BAD_REQUEST' });
    }
    expect(await statusWith(gw, token)).toBe(200);
  });

  it('refuses more than 10,000 users (400) and a body over 1 MiB (413), ending nothing', async () => {
    const gw = await startGateway();
    const { token } = await gw.loginJson('finn');
    const many = Array.from({ length: 10_001 }, (_, i) => `u${i}`);
    const tooMany = await bulk(gw, '', { users: [...many, 'finn'] });
    expect(tooMany.status).toBe(400);
    expect(((await tooMany.json()) as { message: string }).message).toMatch(/10000 users/);
    const huge = await bulk(gw, '', { users: ['finn', 'x'.repeat(1024 * 1024)] });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: 'SG_ERR_BODY_TOO_LARGE' });
    expect(await statusWith(gw, token)).toBe(200);
  });

  it('needs the admin token', async () => {
    const gw = await startGateway();
    const { token } = await gw.loginJson('gus');
    const res = await gw.admin('/admin/sessions?user=gus', { method: 'DELETE', auth: false });
    expect(res.status).toBe(401);
    expect(await statusWith(gw, token)).toBe(200);
  });
});

const redisServer = needTool('redis-server', 'redis-server', haveRedis());

describe.skipIf(!redisServer)('DELETE /admin/sessions on two replicas', () => {
  it('a bulk end on one replica is refused on the other', async () => {
    const [a, b] = await replicasOn(await ownRedis(), testClock(), { limit: 1 });
    const users = Array.from({ length: 50 }, (_, i) => `r-${i}`);
    const tokens = await Promise.all(users.map(async (u) => (await a.loginJson(u)).token));
    // B has seen (and cached) every token as live.
    expect((await Promise.all(tokens.map((t) => statusWith(b, t)))).every((s) => s === 200)).toBe(true);

    // B hears of every ended token on the invalidation channel.
    const heardOnB = new Promise<void>((resolve) => {
      let heard = 0;
      b.gateway.sessions.onRevoked((ids) => {
        heard += ids.length;
        if (heard >= tokens.length) resolve();
      });
    });
    const answer = (await (await bulk(a, '', { users })).json()) as BulkAnswer;
    expect(answer.ended).toBe(50);
    await heardOnB;
    const statuses = await Promise.all(tokens.map((t) => statusWith(b, t)));
    expect(statuses.filter((s) => s === 401)).toHaveLength(50);
  });
});
