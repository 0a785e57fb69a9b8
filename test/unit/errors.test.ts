import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ERRORS, UpstreamError, type ErrorCode } from '../../src/errors.js';

const doc = parse(readFileSync(new URL('../../openapi/admin.yaml', import.meta.url), 'utf8')) as {
  components: { schemas: { Error: { properties: { error: { enum: string[] } } } } };
};

function isCode(c: string): c is ErrorCode {
  return c in ERRORS;
}

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const troubleshooting = readme.slice(readme.indexOf('## Troubleshooting'), readme.indexOf('## Deployment'));
/** The first cell of each row of the Troubleshooting table. */
const readmeCodes = [...troubleshooting.matchAll(/^\| `([^`]+)` +\|/gm)].map((m) => m[1] ?? '');

describe('the error registry', () => {
  it('is the Troubleshooting table of the README: every code has its row, every row a code or an event', () => {
    const events = readmeCodes.filter((c) => c.startsWith('event: '));
    expect(events.length).toBeGreaterThan(0);
    expect(readmeCodes.filter((c) => !c.startsWith('event: ')).sort()).toEqual(Object.keys(ERRORS).sort());
  });

  it('holds every code the admin API documents, each with an HTTP status', () => {
    const documented = doc.components.schemas.Error.properties.error.enum;
    expect(documented.length).toBeGreaterThan(0);
    for (const code of documented) {
      expect(isCode(code), code).toBe(true);
      if (isCode(code)) expect(ERRORS[code].status, code).toBeTypeOf('number');
    }
  });

  it('answers session rejections 401, a store outage 503 and a refused login 409', () => {
    expect(ERRORS.session_superseded.status).toBe(401);
    expect(ERRORS.session_store_unavailable.status).toBe(503);
    expect(ERRORS.session_limit_reached.status).toBe(409);
  });

  it("keeps the families apart: session_ codes in lowercase, the gateway's own as SG_ERR_ or SG_WARN_", () => {
    for (const code of Object.keys(ERRORS))
      expect(code).toMatch(/^(session_[a-z_]+|SG_(ERR|WARN)_[A-Z0-9_]+)$/);
  });

  it('gives an upstream error the status of its code', () => {
    expect(new UpstreamError('SG_ERR_UPSTREAM_TIMEOUT', 'slow').status).toBe(504);
    expect(new UpstreamError('SG_ERR_UPSTREAM_CONNECT', 'down').status).toBe(502);
  });
});
