import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const MINIMAL = {
  upstream: 'http://127.0.0.1:3000',
  secret: 'a-secret-of-sixteen+',
  login: [JSON_LOGIN_RULE],
};

function problemsOf(raw: unknown): readonly { path: string; message: string }[] {
  try {
    parseConfig(raw, {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('client timeouts', () => {
  it('give the request head 10s and the whole request 5m by default', () => {
    const { config } = parseConfig(MINIMAL, {});
    expect(config.timeouts.headers).toBe(10_000);
    expect(config.timeouts.body).toBe(300_000);
  });

  it('refuse a head timeout longer than the whole-request one, naming timeouts.headers', () => {
    const problems = problemsOf({ ...MINIMAL, timeouts: { headers: '2m', body: '1m' } });
    expect(problems.map((p) => p.path)).toEqual(['timeouts.headers']);
    expect(problems[0]?.message).toContain('timeouts.body');
  });

  it('accept a head timeout equal to the whole-request one', () => {
    const { config } = parseConfig({ ...MINIMAL, timeouts: { headers: '30s', body: '30s' } }, {});
    expect(config.timeouts).toMatchObject({ headers: 30_000, body: 30_000 });
  });

  it('report a malformed duration without a second problem about the order', () => {
    expect(problemsOf({ ...MINIMAL, timeouts: { headers: 'soon', body: '1m' } }).map((p) => p.path)).toEqual([
      'timeouts.headers',
    ]);
  });
});
