import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const run = promisify(execFile);
const MINIMAL = {
  upstream: 'http://127.0.0.1:3000',
  secret: 'a-secret-of-sixteen+',
  login: [JSON_LOGIN_RULE],
};

function problemsOf(raw: unknown, env: NodeJS.ProcessEnv = {}): { path: string; message: string }[] {
  try {
    parseConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('SG_ERR_CONFIG');
    return [...(err as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const { config } = parseConfig(MINIMAL, {});
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.store).toBe('memory');
    expect(config.sessions).toMatchObject({
      limit: 1,
      onLimit: 'replace-oldest',
      idleTimeout: 1_800_000,
      maxAge: 43_200_000,
      unknownTokens: 'pass',
    });
    expect(config.tokens).toEqual([{ kind: 'bearer', value: {} }]);
    expect(config.protect).toEqual({ paths: ['/**'], except: [] });
    expect(config.admin.listen).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(config.cache.maxStaleness).toBe(1000);
  });

  it('freezes the result', () => {
    const { config } = parseConfig(MINIMAL, {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.sessions)).toBe(true);
  });

  it('reads ${VAR} from the environment', () => {
    const { config } = parseConfig(
      { ...MINIMAL, secret: '${SG_TEST_SECRET}' },
      { SG_TEST_SECRET: 'from-the-environment!' },
    );
    expect(config.secret).toBe('from-the-environment!');
  });

  it('names an unset environment variable with its key path', () => {
    expect(problemsOf({ ...MINIMAL, secret: '${SG_UNSET}' })).toContainEqual({
      path: 'secret',
      message: 'environment variable SG_UNSET is not set',
    });
  });

  it('suggests the meant key for a misspelled one', () => {
    expect(problemsOf({ ...MINIMAL, sessions: { limt: 2 } })).toContainEqual({
      path: 'sessions.limt',
      message: 'unknown key; did you mean "limit"?',
    });
  });

  it('suggests the meant key inside a token source object', () => {
    expect(problemsOf({ ...MINIMAL, tokens: [{ from: 'cookie:sid', chunkd: true }] })).toEqual([
      { path: 'tokens[0].chunkd', message: 'unknown key; did you mean "chunked"?' },
    ]);
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({
      upstream: 'ftp://x',
      secret: 'short',
      sessions: { idleTimeout: 'soon', onLimit: 'kick' },
      login: [{ match: 'login', token: 'body:x' }],
    });
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'upstream',
        'secret',
        'sessions.idleTimeout',
        'sessions.onLimit',
        'login[0].match',
        'login[0].token',
        'login[0].user',
      ]),
    );
  });

  it('says what a duration should look like', () => {
    const [p] = problemsOf({ ...MINIMAL, sessions: { idleTimeout: '15 minutes' } });
    expect(p?.path).toBe('sessions.idleTimeout');
    expect(p?.message).toContain('expected a duration such as 500ms, 30s, 30m, 12h or 7d');
    expect(p?.message).toContain('"15 minutes"');
  });

  it('names an invalid regular expression instead of crashing at startup', () => {
    const problems = problemsOf({
      ...MINIMAL,
      login: [{ match: 'POST /login', token: { from: 'cookie:sid', capture: '([' }, user: 'cookie:/([/' }],
    });
    expect(problems).toContainEqual({
      path: 'login[0].token.capture',
      message: 'expected a valid regular expression',
    });
    expect(problems.map((p) => p.path)).toContain('login[0].user');
  });

  it('refuses an upstream with a path, which forwarding would drop', () => {
    const problems = problemsOf({ ...MINIMAL, upstream: 'http://app:3000/base' });
    expect(problems.map((p) => p.path)).toContain('upstream');
    expect(problems.find((p) => p.path === 'upstream')?.message).toMatch(/expected an origin/);
  });

  it('requires a login rule', () => {
    expect(problemsOf({ upstream: MINIMAL.upstream, secret: MINIMAL.secret })).toContainEqual({
      path: 'login',
      message: 'required',
    });
  });

  it('warns about cookie tokens with unknownTokens: pass', () => {
    const { warnings } = parseConfig(
      {
        ...MINIMAL,
        login: [{ match: 'POST /login', token: 'cookie:sessionid', user: 'request.form:username' }],
      },
      {},
    );
    expect(warnings[0]?.path).toBe('login[0].token');
    expect(warnings[0]?.message).toContain('unknownTokens: reject');
  });
});

describe('the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cli-'));
  const cli = join(import.meta.dirname, '../../dist/src/cli.js');
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('exits 0 on check of a valid file', async () => {
    const p = file(
      'ok.yaml',
      `upstream: http://127.0.0.1:3000\nsecret: a-secret-of-sixteen+\nlogin:\n  - match: POST /api/login\n    token: json:accessToken\n    user: json:user.id\n`,
    );
    const { stdout } = await run('node', [cli, 'check', '--config', p]);
    expect(stdout).toContain('configuration is valid');
  });

  it('exits 2 and names the key path, the value and what was expected', async () => {
    const p = file(
      'bad.yaml',
      `upstream: http://127.0.0.1:3000\nsecret: a-secret-of-sixteen+\nsessions:\n  onLimit: kick-everyone\nlogin:\n  - match: POST /api/login\n    token: json:accessToken\n    user: json:user.id\n`,
    );
    const err = (await run('node', [cli, 'check', '--config', p]).catch((e: unknown) => e)) as {
      code: number;
      stderr: string;
    };
    expect(err.code).toBe(2);
    expect(err.stderr).toContain('sessions.onLimit');
    expect(err.stderr).toContain("'replace-oldest' | 'reject-new'");
    expect(err.stderr).toContain('"kick-everyone"');
  });

  it('exits 2 on a file that is not YAML', async () => {
    const p = file('broken.yaml', 'login: [unclosed');
    const err = (await run('node', [cli, 'check', '--config', p]).catch((e: unknown) => e)) as {
      code: number;
      stderr: string;
    };
    expect(err.code).toBe(2);
    expect(err.stderr).toContain('is not valid YAML');
  });

  it('exits 2 without a configuration', async () => {
    const err = (await run('node', [cli], { env: { PATH: process.env.PATH } }).catch((e: unknown) => e)) as {
      code: number;
      stderr: string;
    };
    expect(err.code).toBe(2);
    expect(err.stderr).toContain('--config');
  });

  it('prints help', async () => {
    const { stdout } = await run('node', [cli, '--help']);
    expect(stdout).toContain('sessiongate check');
  });
});
