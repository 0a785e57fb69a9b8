/**
 * Keeps openapi/admin.yaml true: every documented operation answers on a real gateway's admin listener
 * with a documented status, content type and a body that fits the documented schema; every route the
 * admin server serves is documented (and nothing else answers); the default-open endpoints are the
 * ones the document marks open.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { adminRoutes } from '../../src/admin/server.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

type Schema = {
  $ref?: string;
  type?: string | string[];
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
};
type MediaTypes = Record<string, { schema?: Schema }>;
type ResponseObject = { $ref?: string; description: string; content?: MediaTypes };
type Operation = {
  operationId?: string;
  security?: Record<string, string[]>[];
  responses: Record<string, ResponseObject>;
};
type Doc = {
  openapi: string;
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, Operation | unknown>>;
  components: Record<string, Record<string, unknown>>;
};

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const doc = parse(readFileSync(new URL('../../openapi/admin.yaml', import.meta.url), 'utf8')) as Doc;

function resolve<T>(node: T | { $ref: string }): T {
  let n: unknown = node;
  for (let i = 0; i < 10 && n && typeof n === 'object' && '$ref' in n; i++) {
    const ref = (n as { $ref: string }).$ref;
    expect(ref.startsWith('#/'), ref).toBe(true);
    n = ref
      .slice(2)
      .split('/')
      .reduce<unknown>((acc, k) => (acc as Record<string, unknown> | undefined)?.[k], doc);
    expect(n, `unresolved ${ref}`).toBeDefined();
  }
  return n as T;
}

/** A JSON Schema check of the subset the document uses; returns problems with their JSON path. */
function validate(value: unknown, schema: Schema, path = '$'): string[] {
  const s = resolve<Schema>(schema);
  const problems: string[] = [];
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const actual =
      value === null
        ? 'null'
        : Array.isArray(value)
          ? 'array'
          : Number.isInteger(value)
            ? 'integer'
            : typeof value;
    const ok = types.some((t) => t === actual || (t === 'number' && actual === 'integer'));
    if (!ok) return [`${path}: expected ${types.join('|')}, got ${actual}`];
  }
  if (s.const !== undefined && value !== s.const) problems.push(`${path}: expected ${String(s.const)}`);
  if (s.enum !== undefined && !s.enum.includes(value)) problems.push(`${path}: ${String(value)} not in enum`);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in obj)) problems.push(`${path}: missing required ${r}`);
    for (const [k, sub] of Object.entries(s.properties ?? {}))
      if (k in obj) problems.push(...validate(obj[k], sub, `${path}.${k}`));
  }
  if (Array.isArray(value) && s.items)
    value.forEach((v, i) => problems.push(...validate(v, s.items as Schema, `${path}[${i}]`)));
  return problems;
}

interface Op {
  readonly method: string;
  readonly path: string;
  readonly op: Operation;
}

const operations: Op[] = Object.entries(doc.paths).flatMap(([path, item]) =>
  METHODS.filter((m) => m in item).map((m) => ({ method: m.toUpperCase(), path, op: item[m] as Operation })),
);

/** Checks a response against the operation's documented response for its status. */
async function conforms(op: Op, res: Response): Promise<unknown> {
  const documented = op.op.responses[String(res.status)];
  expect(documented, `${op.method} ${op.path} answered an undocumented ${res.status}`).toBeDefined();
  const response = resolve<ResponseObject>(documented as ResponseObject);
  const text = await res.text();
  if (!response.content) return text;
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() as string;
  const media = response.content[contentType];
  expect(
    media,
    `${op.method} ${op.path} ${res.status}: undocumented content type ${contentType}`,
  ).toBeDefined();
  const body = contentType === 'application/json' ? (JSON.parse(text) as unknown) : text;
  if (media?.schema)
    expect(validate(body, media.schema), `${op.method} ${op.path} ${res.status}`).toEqual([]);
  return body;
}

describe('openapi/admin.yaml', () => {
  let gw: TestGateway;
  const user = 'openapi user/é';
  beforeAll(async () => {
    gw = await startGateway({ sessions: { limit: 5 } });
    for (let i = 0; i < 3; i++) await gw.loginJson(user, { 'user-agent': `agent-${i}` });
  });

  it('is an OpenAPI 3.1 document whose references resolve and whose operations have ids', () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const ids = new Set<string>();
    for (const { method, path, op } of operations) {
      expect(op.operationId, `${method} ${path}`).toMatch(/^\w+$/);
      expect(ids.has(op.operationId as string)).toBe(false);
      ids.add(op.operationId as string);
      for (const r of Object.values(op.responses)) resolve(r);
    }
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const r of refs) resolve({ $ref: (JSON.parse(`{${r}}`) as { $ref: string }).$ref });
  });

  it('documents exactly the routes the admin server serves', () => {
    const documented = operations.map((o) => `${o.method} ${o.path}`).sort();
    const served = adminRoutes.map((r) => `${r.method} ${r.path}`).sort();
    expect(documented).toEqual(served);
  });

  it('every documented operation answers with a documented status and body', async () => {
    const list = (await (await gw.admin(`/admin/users/${encodeURIComponent(user)}/sessions`)).json()) as {
      sessions: { id: string }[];
    };
    const ids = list.sessions.map((s) => s.id);
    expect(ids).toHaveLength(3);
    // Reads first, then ending one, then ending all (so each DELETE has something to end).
    const order = (o: Op) => (o.method === 'GET' ? 0 : o.path.includes('{sessionId}') ? 1 : 2);
    for (const op of [...operations].sort((a, b) => order(a) - order(b))) {
      const sessionId = op.method === 'DELETE' ? (ids.shift() as string) : (ids[0] as string);
      const path = op.path
        .replace('{user}', encodeURIComponent(user))
        .replace('{sessionId}', encodeURIComponent(sessionId));
      // The bulk call names its users in the query.
      const query = op.path === '/admin/sessions' ? `?user=${encodeURIComponent(user)}` : '';
      const res = await gw.admin(path + query, { method: op.method });
      expect(res.status, `${op.method} ${op.path}`).toBeGreaterThanOrEqual(200);
      expect(res.status, `${op.method} ${op.path}`).toBeLessThan(300);
      const body = await conforms(op, res);
      if (op.path.startsWith('/admin/users/')) expect(body).toMatchObject({ user });
    }
  });

  it('documents the error answers: 401 without the token, 404 for an unknown session', async () => {
    for (const op of operations) {
      const path = op.path.replace('{user}', 'someone').replace('{sessionId}', 'no-such-session');
      const res = await gw.admin(path, { method: op.method, auth: false });
      const openByDefault = Object.keys(op.op.security?.[0] ?? doc.security[0] ?? { x: 1 }).length === 0;
      // The document marks as open (`{}` first) exactly the endpoints `admin.open` opens by default.
      expect(res.status, `${op.method} ${op.path} without a token`).toBe(openByDefault ? 200 : 401);
      await conforms(op, res);
      if (op.path.includes('{sessionId}')) {
        const missing = await gw.admin(path, { method: op.method });
        expect(missing.status).toBe(404);
        expect(await conforms(op, missing)).toMatchObject({ error: 'SG_ERR_SESSION_NOT_FOUND' });
      }
    }
  });

  it('answers nothing undocumented: other methods get 405, other paths 404', async () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const concrete = path.replace('{user}', 'u').replace('{sessionId}', 's');
      for (const m of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        if (m.toLowerCase() in item) continue;
        const res = await gw.admin(concrete, { method: m });
        expect(res.status, `${m} ${path}`).toBe(405);
        const allow = (res.headers.get('allow') ?? '').split(', ').sort();
        expect(allow).toEqual(
          METHODS.filter((x) => x in item)
            .map((x) => x.toUpperCase())
            .sort(),
        );
      }
    }
    for (const path of [
      '/',
      '/admin',
      '/admin/users/u',
      '/admin/users/u/sessions/s/t',
      '/health',
      '/metrics/x',
    ]) {
      expect((await gw.admin(path)).status, path).toBe(404);
    }
  });
});
