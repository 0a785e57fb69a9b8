/** /metrics moves with the traffic, and no user value ever reaches it. */
import { describe, expect, it } from 'vitest';
import { bearer, startGateway, type TestGateway } from '../support/gateway.js';

/** Prometheus text -> `name{labels}` -> value (only the series we read; HELP/TYPE skipped). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function scrape(gw: TestGateway): Promise<{ text: string; values: Map<string, number> }> {
  const res = await gw.admin('/metrics');
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, values: parseMetrics(text) };
}

describe('metrics', () => {
  it('counters move with logins, live and superseded requests; no user or token in the text', async () => {
    const gw = await startGateway({ sessions: { limit: 1 } });
    const user = 'metrics-user-7f3a9c';
    const before = await scrape(gw);
    const delta = (after: Map<string, number>, series: string) =>
      (after.get(series) ?? 0) - (before.values.get(series) ?? 0);

    const first = await gw.loginJson(user);
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${gw.url}/api/items?i=${i}`, { headers: bearer(first.token) });
      expect(res.status).toBe(200);
    }
    const second = await gw.loginJson(user);
    expect(second.response.headers.get('sessiongate-ended-sessions')).toBe('1');
    const rejected = await fetch(`${gw.url}/api/items`, { headers: bearer(first.token) });
    expect(rejected.status).toBe(401);
    expect(((await rejected.json()) as { error: string }).error).toBe('session_superseded');
    expect((await fetch(`${gw.url}/api/items`, { headers: bearer(second.token) })).status).toBe(200);
    expect((await fetch(`${gw.url}/public`)).status).toBe(200);

    const after = await scrape(gw);
    const v = after.values;
    expect(delta(v, 'sessiongate_requests_total{outcome="passed_live"}')).toBe(6);
    expect(delta(v, 'sessiongate_requests_total{outcome="rejected_superseded"}')).toBe(1);
    // The two login requests carry no token; plus the one public request.
    expect(delta(v, 'sessiongate_requests_total{outcome="passed_no_token"}')).toBe(3);
    expect(delta(v, 'sessiongate_logins_total{outcome="created"}')).toBe(2);
    expect(delta(v, 'sessiongate_sessions_ended_total{reason="superseded"}')).toBe(1);
    // Logins fill the cache, so every check here is answered from it.
    expect(delta(v, 'sessiongate_cache_hits_total')).toBe(7);
    expect(v.get('sessiongate_live_sessions')).toBe(1);
    expect(v.get('sessiongate_store_available')).toBe(1);

    const listed = (await (await gw.admin(`/admin/users/${user}/sessions`)).json()) as {
      sessions: { id: string }[];
    };
    const sessionIds = listed.sessions.map((s) => s.id);
    expect(sessionIds).toHaveLength(1);

    // An admin DELETE is counted by reason too.
    await gw.admin(`/admin/users/${user}/sessions`, { method: 'DELETE' });
    const ended = await scrape(gw);
    expect(ended.values.get('sessiongate_sessions_ended_total{reason="ended_by_admin"}')).toBe(1);
    expect(ended.values.get('sessiongate_live_sessions')).toBe(0);

    // No user value becomes a label or appears anywhere.
    for (const text of [before.text, after.text, ended.text]) {
      expect(text).not.toContain(user);
      expect(text).not.toContain(first.token);
      expect(text).not.toContain(second.token);
      for (const id of sessionIds) expect(text).not.toContain(id);
    }
    for (const line of after.text.split('\n'))
      if (line && !line.startsWith('#')) expect(line).toMatch(/^sessiongate_/);
  });

  it('counts cache misses and the store check latency when the cache has to ask the store', async () => {
    // Strict consistency asks the store on every request.
    const gw = await startGateway({ consistency: 'strict' });
    const { token } = await gw.loginJson('strict-user');
    const before = await scrape(gw);
    for (let i = 0; i < 3; i++) await fetch(`${gw.url}/api/x`, { headers: bearer(token) });
    const after = await scrape(gw);
    const d = (s: string) => (after.values.get(s) ?? 0) - (before.values.get(s) ?? 0);
    expect(d('sessiongate_cache_misses_total')).toBe(3);
    expect(d('sessiongate_store_check_seconds_count')).toBe(3);
    expect(d('sessiongate_requests_total{outcome="passed_live"}')).toBe(3);
  });

  it('collects Node process metrics with the sessiongate_ prefix when enabled', async () => {
    const gw = await startGateway({}, { defaultMetrics: true });
    const { text } = await scrape(gw);
    expect(text).toContain('sessiongate_process_cpu_user_seconds_total');
    expect(text).toContain('sessiongate_nodejs_heap_size_used_bytes');
  });
});
