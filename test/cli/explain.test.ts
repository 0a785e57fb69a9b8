/**
 * `sessiongate check --explain`: the configuration said back in words, through the built CLI; and the
 * example paths it prints, run through the gateway's own route matcher (so the words cannot drift from
 * what the gateway matches).
 */
import { describe, expect, it } from 'vitest';
import { pathExamples } from '../../src/cli/explain.js';
import { compilePath } from '../../src/tokens/route.js';
import { GEO_DB_V4 } from '../geo/addresses.js';
import { runCli, tempFiles } from '../support/cli.js';

const files = tempFiles('sg-cli-explain-');
let written = 0;

/** A PHP front controller (a `when` rule), a logout at any depth (`**`), a password in the store URL. */
const FRONT_CONTROLLER = `upstream: http://127.0.0.1:3000
secret: a-secret-of-sixteen+
sessions: { unknownTokens: reject, limit: 2 }
login:
  - match: POST /index.php
    when: { query: { action: login } }
    token: cookie:PHPSESSID
    user: request.form:username
    success: { status: 302, location: /account, notLocation: error }
logout:
  - match: GET,POST /app/**/logout
tokens: [cookie:PHPSESSID, bearer]
protect:
  paths: ['/app/**']
  except: ['/app/static/**']
store: redis://:hunter2@127.0.0.1:6390
`;

/** The block of `text` from the line `first` to the next blank line. */
function section(text: string, first: string): string {
  const lines = text.split('\n');
  const start = lines.indexOf(first);
  expect(start, `a line "${first}"`).toBeGreaterThan(-1);
  const end = lines.indexOf('', start);
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
}

async function explainOf(yaml: string): Promise<string> {
  const { code, stdout, stderr } = await runCli([
    'check',
    '--config',
    files.write(`c${++written}.yaml`, yaml),
    '--explain',
  ]);
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return stdout;
}

describe('sessiongate check --explain', () => {
  it('says what a rule with `when` conditions matches, and where its token and user are read', async () => {
    expect(section(await explainOf(FRONT_CONTROLLER), 'login[0]: POST /index.php')).toBe(
      [
        'login[0]: POST /index.php',
        '  methods:       POST',
        '  path:          /index.php',
        '                 "index.php" also matches "index.php.<suffix>" (a format suffix)',
        '                 e.g. /index.php, /index.php.json, /INDEX.PHP',
        '  when:          query field action is exactly "login"',
        '                 a field sent twice, or read differently by the app stacks, is refused (400)',
        "  token:         the response's Set-Cookie PHPSESSID",
        "  user:          the request's form field username (an application/x-www-form-urlencoded body)",
        '                 normalised: trim',
        '  success:       status 302, with a Location starting with /account, and no Location containing error',
        '                 a response that is no success creates and ends nothing',
        '  onUnreadable:  refuse: a success whose token or user cannot be read is answered 502 SG_ERR_LOGIN_UNREADABLE',
      ].join('\n'),
    );
  });

  it('says what a `**` inside a pattern stands for, with paths it matches', async () => {
    expect(section(await explainOf(FRONT_CONTROLLER), 'logout[0]: GET,POST /app/**/logout')).toBe(
      [
        'logout[0]: GET,POST /app/**/logout',
        '  methods:       GET, POST',
        '  path:          /app/**/logout',
        '                 `**` inside: any number of segments there, none included',
        '                 "logout" also matches "logout.<suffix>" (a format suffix)',
        '                 e.g. /app/logout, /app/a/b/logout, /app/logout.json, /APP/LOGOUT',
        "  presented:     the request's token, read as `tokens` says",
        '                 its session ends (session_logged_out)',
        '  success:       status 200-399',
        '                 any other answer ended nothing at the app, so ends nothing here',
      ].join('\n'),
    );
  });

  it('lists the request token sources in order, the protected paths and their exceptions', async () => {
    const out = await explainOf(FRONT_CONTROLLER);
    expect(section(out, 'Request tokens (tokens), in order')).toContain(
      '  1. the cookie PHPSESSID\n  2. the Authorization header, Bearer scheme',
    );
    expect(section(out, 'Protected paths (protect)')).toBe(
      [
        'Protected paths (protect)',
        '  path:          /app/**',
        '                 a trailing `/**`: the path itself and everything below it',
        '                 "app" also matches "app.<suffix>" (a format suffix)',
        '                 e.g. /app, /app/a/b, /app.json, /APP',
        '  except:        /app/static/**',
        '                 a trailing `/**`: the path itself and everything below it',
        '                 matched exactly: no format suffix',
        '                 e.g. /app/static, /app/static/a/b, /APP/STATIC',
        '  an except pattern wins over every path pattern',
      ].join('\n'),
    );
  });

  it('names the store without its password, and what each failure setting trades', async () => {
    const out = await explainOf(FRONT_CONTROLLER);
    expect(out).not.toContain('hunter2');
    expect(section(out, 'Store')).toBe(
      'Store\n  redis redis://:***@127.0.0.1:6390 (key prefix sg:, command timeout 250ms)',
    );
    const policy = section(out, 'Policy');
    expect(policy).toContain('at most 2 live sessions per user; a login beyond that: replace-oldest');
    expect(policy).toContain('  failMode:      closed: with the store unreachable, requests get 503');
    expect(policy).toContain(
      '  unknownTokens: reject: a token no login was seen for is refused (401 session_unknown)',
    );
    expect(policy).toContain(
      '  consistency:   cached: a cached "live" is trusted for up to cache.maxStaleness (1s)',
    );
  });

  it('says where logins are located, who is told of them and how, and whether tabs follow a sign-out', async () => {
    const out = await explainOf(`upstream: http://127.0.0.1:3000
secret: a-secret-of-sixteen+
login:
  - { match: POST /login, token: cookie:sid, user: request.form:username, success: { status: 302 } }
tokens: [cookie:sid]
geo: { database: ${JSON.stringify(GEO_DB_V4)} }
locationHeader: cf-ipcountry
sessions: { onLimit: warn, unknownTokens: reject }
notify:
  baseUrl: https://app.example.test
  webhook: { url: "https://hooks:s3cret@hooks.example.test/in", secret: a-webhook-secret-16 }
  email: { smtp: "smtp://mailer:pw-mail@127.0.0.1:2525", from: security@example.test, to: "{user}@example.test" }
ui: { liveSignOut: true }
`);
    expect(out).not.toContain('s3cret');
    expect(out).not.toContain('pw-mail');
    expect(section(out, 'Telling the user')).toBe(
      [
        'Telling the user',
        `  location:      ${GEO_DB_V4}: country, region and city of each login's address (the cf-ipcountry header's country wins)`,
        "  new logins:    a device or country not among the user's last 20 of 90 days is flagged newDevice / newLocation",
        '                 (session list, audit, webhook); a first login never is',
        '  webhook:       https://hooks:***@hooks.example.test/in for session.created, session.superseded, session.warned',
        '  e-mail:        to {user}@example.test for session.new_device, session.superseded, session.warned, via smtp://mailer:***@127.0.0.1:2525',
        '  not me:        links on https://app.example.test, valid 1d, once; they end every session of the user',
        "  liveSignOut:   on: a live session's HTML pages follow its end at once (a script and an event stream)",
      ].join('\n'),
    );
  });

  it('says none of it is configured when it is not', async () => {
    const telling = section(await explainOf(FRONT_CONTROLLER), 'Telling the user');
    expect(telling).toContain('  location:      none (set geo.database or locationHeader)');
    expect(telling).toContain('  webhook:       none');
    expect(telling).toContain('  e-mail:        none');
    expect(telling).toContain('  not me:        none (needs notify.baseUrl)');
    expect(telling).toContain(
      '  liveSignOut:   off: an open tab learns of its session ending at its next request',
    );
  });

  it('says when routes are matched case-sensitively, and gives no other-case examples then', async () => {
    const out = await explainOf(`${FRONT_CONTROLLER}routes: { caseSensitive: true }\n`);
    expect(out).toContain('  case-sensitive (routes.caseSensitive: true): /LOGIN is not /login');
    expect(section(out, 'login[0]: POST /index.php')).toContain('e.g. /index.php, /index.php.json\n');
  });

  it('explains nothing for an invalid configuration (exit 2)', async () => {
    const bad = FRONT_CONTROLLER.replace('limit: 2', 'limit: 0');
    const { code, stdout, stderr } = await runCli([
      'check',
      '--config',
      files.write('bad.yaml', bad),
      '--explain',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('sessions.limit');
    expect(stdout).toBe('');
  });
});

describe('the example paths of --explain', () => {
  const patterns = [
    '/login',
    '/index.php',
    '/',
    '/**',
    '/projects/**',
    '/users/:id',
    '/users/:id/**',
    '/files/*/raw',
    '/app/**/j_security_check',
    '/api/**/items/:id',
  ];

  for (const caseSensitive of [false, true])
    for (const suffixes of [true, false])
      it(`all match, as the gateway matches (caseSensitive ${caseSensitive}, suffixes ${suffixes})`, () => {
        for (const pattern of patterns) {
          const matcher = compilePath(pattern, { caseSensitive, suffixes });
          for (const path of pathExamples(pattern, { caseSensitive, suffixes }))
            expect(matcher.match(path), `${pattern} matches ${path}`).toBeDefined();
        }
      });

  it('show no format suffix where the pattern takes none, and the gateway indeed refuses it', () => {
    const matcher = compilePath('/assets/**', { caseSensitive: false, suffixes: false });
    expect(pathExamples('/assets/**', { caseSensitive: false, suffixes: false })).toEqual([
      '/assets',
      '/assets/a/b',
      '/ASSETS',
    ]);
    expect(matcher.match('/assets.json')).toBeUndefined();
  });
});
