/**
 * `sessiongate check --explain`: the validated configuration said back in words, so an operator can
 * see what each rule will match and where it reads the token and the user before any traffic does.
 * Plain text and stable (no timings, no addresses of this machine): tests compare it, people diff it.
 *
 * The path wording follows `src/tokens/route.ts` (which this layer does not import: it reads the config
 * only); `test/cli/explain.test.ts` runs every example path printed here through the real matcher.
 */
import type {
  Config,
  LoginRuleConfig,
  LogoutRuleConfig,
  RefreshRuleConfig,
  RequestTokenSourceConfig,
  SuccessRuleConfig,
  TokenSourceConfig,
  UserSourceConfig,
  WhenConfig,
} from '../config/schema.js';
import type { PresentedSource, ValueOptions } from '../config/sources.js';

export interface PathOptions {
  readonly caseSensitive: boolean;
  /** The last literal segment also matches `segment.<suffix>` (false for `protect.except`). */
  readonly suffixes: boolean;
}

interface PatternParts {
  readonly segments: readonly string[];
  /** A trailing `/**`. */
  readonly rest: boolean;
}

function partsOf(pattern: string): PatternParts {
  const rest = pattern.endsWith('/**');
  const body = rest ? pattern.slice(0, -3) : pattern;
  return { segments: body.split('/').slice(1), rest };
}

/** The last segment is a literal one the format-suffix rule applies to. */
function suffixSegment(parts: PatternParts, options: PathOptions): string | undefined {
  const last = parts.segments[parts.segments.length - 1];
  if (!options.suffixes || last === undefined || last === '' || last === '*' || last === '**')
    return undefined;
  return last.startsWith(':') ? undefined : last;
}

function join(segments: readonly string[]): string {
  return `/${segments.join('/')}`;
}

/**
 * Paths the pattern matches, one per rule of the pattern language it uses: the plain case, `**`
 * inside with two segments, a trailing `/**` with two more, the format suffix, another letter case.
 */
export function pathExamples(pattern: string, options: PathOptions): string[] {
  const parts = partsOf(pattern);
  if (parts.rest && parts.segments.length === 0) return ['/', '/a/b'];
  const concrete = (deep: readonly string[]) =>
    parts.segments.flatMap((s) => (s === '**' ? deep : s === '*' ? ['x'] : s.startsWith(':') ? ['1'] : [s]));
  const plain = join(concrete([]));
  const out = [plain];
  if (parts.segments.includes('**')) out.push(join(concrete(['a', 'b'])));
  if (parts.rest) out.push(`${plain === '/' ? '' : plain}/a/b`);
  if (suffixSegment(parts, options) !== undefined) out.push(`${plain}.json`);
  if (!options.caseSensitive && plain.toUpperCase() !== plain) out.push(plain.toUpperCase());
  return [...new Set(out)];
}

/** What the parts of a pattern stand for, one line each. */
export function describePattern(pattern: string, options: PathOptions): string[] {
  const parts = partsOf(pattern);
  if (parts.rest && parts.segments.length === 0) return ['every path'];
  const lines: string[] = [];
  if (parts.segments.includes('**')) lines.push('`**` inside: any number of segments there, none included');
  if (parts.rest) lines.push('a trailing `/**`: the path itself and everything below it');
  if (parts.segments.includes('*')) lines.push('`*`: exactly one non-empty segment');
  for (const s of parts.segments)
    if (s.startsWith(':')) lines.push(`\`${s}\`: one non-empty segment (the path parameter ${s.slice(1)})`);
  const suffix = suffixSegment(parts, options);
  if (suffix !== undefined) lines.push(`"${suffix}" also matches "${suffix}.<suffix>" (a format suffix)`);
  else if (!options.suffixes) lines.push('matched exactly: no format suffix');
  lines.push(`e.g. ${pathExamples(pattern, options).join(', ')}`);
  return lines;
}

/** `1d`, `30m`, `1s`, `250ms`: the largest unit that divides the value. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const)
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

const LABEL = 15;

/** `  label:      first line` then continuation lines under the value. */
function field(label: string, values: readonly string[]): string[] {
  const head = `  ${`${label}:`.padEnd(LABEL)}`;
  return values.map((v, i) => (i === 0 ? head : ' '.repeat(head.length)) + v);
}

function list<T>(v: T | readonly T[]): readonly T[] {
  return Array.isArray(v) ? v : [v as T];
}

function cookieName(arg: string): string {
  if (arg.length > 2 && arg.startsWith('/') && arg.endsWith('/')) return `a name matching ${arg}`;
  if (arg.includes('*')) return `a name matching ${arg} (\`*\`: any characters)`;
  return arg;
}

function valueOptions(o: ValueOptions, name: string, chunked = false): string {
  const steps: string[] = [];
  if (chunked) steps.push(`joined from its chunk cookies (${name}C1.., ${name}.0..)`);
  if (o.split !== undefined) steps.push(`split on ${JSON.stringify(o.split)}, field ${o.field ?? 0}`);
  if (o.capture !== undefined) steps.push(`the first group of /${o.capture}/`);
  return steps.length ? `; ${steps.join(', then ')}` : '';
}

/** Where a login or refresh response carries an issued token. */
export function describeIssuedToken(source: TokenSourceConfig): string {
  switch (source.kind) {
    case 'json':
      return `the response's JSON body, field ${source.path}` + valueOptions(source.value, source.path);
    case 'header':
      return `the response header ${source.name}` + valueOptions(source.value, source.name);
    case 'cookie':
      return (
        `the response's Set-Cookie ${cookieName(source.name)}` +
        valueOptions(source.value, source.name, source.chunked)
      );
  }
}

/** Where a login names its user. */
export function describeUser(source: UserSourceConfig): string {
  switch (source.kind) {
    case 'json':
      return `the response's JSON body, field ${source.path}` + valueOptions(source.value, source.path);
    case 'request.json':
      return `the request's JSON body, field ${source.path}` + valueOptions(source.value, source.path);
    case 'request.form':
      return (
        `the request's form field ${source.field} (an application/x-www-form-urlencoded body)` +
        valueOptions(source.value, source.field)
      );
    case 'jwt':
      return (
        `the claim ${source.claim} of the first issued token that is a JWT` +
        valueOptions(source.value, source.claim)
      );
    case 'header':
      return `the response header ${source.name}` + valueOptions(source.value, source.name);
    case 'path':
      return `the path parameter :${source.param} of the match` + valueOptions(source.value, source.param);
    case 'cookie':
      return `the response's Set-Cookie ${cookieName(source.name)}` + valueOptions(source.value, source.name);
  }
}

/** Where requests carry a token (`tokens`). */
export function describeRequestToken(source: RequestTokenSourceConfig): string {
  switch (source.kind) {
    case 'bearer':
      return 'the Authorization header, Bearer scheme' + valueOptions(source.value, '');
    case 'header':
      return `the request header ${source.name}` + valueOptions(source.value, source.name);
    case 'pathparam':
      return (
        `the path parameter ;${source.name}=<token> (/page;${source.name}=...)` +
        valueOptions(source.value, source.name)
      );
    case 'query':
      return `the query-string field ${source.name}` + valueOptions(source.value, source.name);
    case 'cookie': {
      let text =
        `the cookie ${cookieName(source.name)}` + valueOptions(source.value, source.name, source.chunked);
      if (source.path !== undefined || source.domain !== undefined)
        text += `; set by the app with Path=${source.path ?? '/'}${source.domain ? `, Domain=${source.domain}` : ''}`;
      return text;
    }
  }
}

function describePresented(spec: PresentedSource | undefined): string {
  if (spec === undefined) return "the request's token, read as `tokens` says";
  return spec.kind === 'request.json'
    ? `the request's JSON body, field ${spec.path}`
    : `the request's form field ${spec.field} (an application/x-www-form-urlencoded body)`;
}

export function describeSuccess(rule: SuccessRuleConfig): string {
  const statuses = list(rule.status).map(String);
  let text = `status ${statuses.length > 1 ? `${statuses.slice(0, -1).join(', ')} or ${statuses.at(-1)}` : statuses[0]}`;
  if (rule.location !== undefined)
    text += `, with a Location starting with ${list(rule.location).join(' or ')}`;
  if (rule.notLocation !== undefined)
    text += `, and no Location containing ${list(rule.notLocation).join(' or ')}`;
  return text;
}

function describeWhen(when: WhenConfig): string[] {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(when.query ?? {}))
    lines.push(`query field ${k} is exactly ${JSON.stringify(v)}`);
  for (const [k, v] of Object.entries(when.form ?? {}))
    lines.push(`form field ${k} is exactly ${JSON.stringify(v)} (an application/x-www-form-urlencoded body)`);
  lines.push('a field sent twice, or read differently by the app stacks, is refused (400)');
  return lines;
}

function routeLines(match: string, when: WhenConfig | undefined, options: PathOptions): string[] {
  const space = match.indexOf(' ');
  const methods = match.slice(0, space);
  const path = match.slice(space + 1);
  return [
    ...field('methods', [methods === '*' ? 'any method' : methods.split(',').join(', ')]),
    ...field('path', [path, ...describePattern(path, options)]),
    ...(when ? field('when', describeWhen(when)) : []),
  ];
}

function tokenLines(token: LoginRuleConfig['token'], many: string): string[] {
  const tokens = list(token);
  return tokens.length === 1
    ? field('token', [describeIssuedToken(tokens[0] as TokenSourceConfig)])
    : field('tokens', [many, ...tokens.map((t, i) => `${i + 1}. ${describeIssuedToken(t)}`)]);
}

function loginLines(rule: LoginRuleConfig, i: number, options: PathOptions): string[] {
  const probe = rule.probe;
  const user = probe
    ? [
        `asked of the app: ${probe.match} with the new token (${probe.presentAs ?? 'as the first of `tokens`'}),`,
        `the answer read at ${describeUser(probe.user)}; timeout ${formatDuration(probe.timeout)};`,
        probe.onFailure === 'refuse'
          ? 'a failed probe refuses the login (503)'
          : 'a failed probe passes the login unregistered',
      ]
    : rule.user !== undefined
      ? [describeUser(rule.user)]
      : [];
  return [
    `login[${i}]: ${rule.match}`,
    ...routeLines(rule.match, rule.when, options),
    ...tokenLines(rule.token, 'all of them belong to the new session'),
    ...field('user', [
      ...user,
      `normalised: ${rule.normalize.length ? rule.normalize.join(', then ') : 'as sent'}`,
    ]),
    ...field('success', [
      describeSuccess(rule.success),
      'a response that is no success creates and ends nothing',
    ]),
    ...field(
      'onUnreadable',
      rule.onUnreadable === 'refuse'
        ? ['refuse: a success whose token or user cannot be read is answered 502 SG_ERR_LOGIN_UNREADABLE']
        : [
            'pass: a success whose token or user cannot be read reaches the client unregistered (a limit bypass)',
          ],
    ),
  ];
}

function refreshLines(rule: RefreshRuleConfig, i: number, options: PathOptions): string[] {
  return [
    `refresh[${i}]: ${rule.match}`,
    ...routeLines(rule.match, rule.when, options),
    ...field('presented', [describePresented(rule.presented)]),
    ...tokenLines(rule.token, "all of them join the presented token's session"),
    ...field('success', [describeSuccess(rule.success)]),
  ];
}

function logoutLines(rule: LogoutRuleConfig, i: number, options: PathOptions): string[] {
  return [
    `logout[${i}]: ${rule.match}`,
    ...routeLines(rule.match, rule.when, options),
    ...field('presented', [describePresented(rule.presented), 'its session ends (session_logged_out)']),
    ...field('success', [
      describeSuccess(rule.success),
      'any other answer ended nothing at the app, so ends nothing here',
    ]),
  ];
}

/** The store in a few words, without its password. */
export function storeName(store: Config['store']): string {
  if (store === 'memory') return 'memory';
  const redis = typeof store === 'string' ? { url: store } : store;
  if ('cluster' in redis && redis.cluster) return `redis cluster, seeds ${redis.cluster.join(', ')}`;
  if ('sentinels' in redis && redis.sentinels)
    return `redis sentinel master ${redis.sentinelName} via ${redis.sentinels.join(', ')}`;
  return `redis ${redactUrl(redis.url ?? '')}`;
}

export function describeStore(store: Config['store']): string {
  if (store === 'memory') return 'memory: sessions live in this process only (one replica; lost on restart)';
  if (typeof store === 'string') return `${storeName(store)} (key prefix sg:, command timeout 250ms)`;
  const password = store.password !== undefined ? ', password set' : '';
  return `${storeName(store)} (key prefix ${store.keyPrefix}, command timeout ${formatDuration(store.commandTimeout)}${password})`;
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

function policyLines(config: Config): string[] {
  const s = config.sessions;
  return [
    ...field('sessions', [
      `at most ${s.limit} live session${s.limit === 1 ? '' : 's'} per user; a login beyond that: ${
        s.onLimit === 'replace-oldest'
          ? 'replace-oldest (the oldest session ends)'
          : s.onLimit === 'replace-least-recent'
            ? 'replace-least-recent (the session used longest ago ends)'
            : s.onLimit === 'ask'
              ? `ask (the login is held up to ${formatDuration(s.askTimeout)} while the user chooses a session to end)`
              : s.onLimit === 'warn'
                ? 'warn (the login is let in; every other session of the user is warned, and ends only if the user says it was not them)'
                : 'reject-new (the login is refused, 409)'
      }`,
      `idle timeout ${formatDuration(s.idleTimeout)}, max age ${formatDuration(s.maxAge)}`,
    ]),
    ...field('mode', [
      config.mode === 'enforce'
        ? 'enforce: dead and superseded tokens are refused'
        : 'report-only: enforces nothing; what would be refused is logged and counted, and passes',
    ]),
    ...field('failMode', [
      config.failMode === 'closed'
        ? 'closed: with the store unreachable, requests get 503 and cookies are left alone;'
        : 'open: with the store unreachable, requests pass unless their token is cached as dead,',
      config.failMode === 'closed'
        ? 'no bypass, but users are out while the store is'
        : 'and logins are not registered: the limit is off during the outage (logged and counted)',
    ]),
    ...field('unknownTokens', [
      s.unknownTokens === 'pass'
        ? 'pass: a token no login was seen for passes (issued before sessiongate, or by a login it'
        : 'reject: a token no login was seen for is refused (401 session_unknown); values the app gave',
      s.unknownTokens === 'pass'
        ? 'could not see); signed-cookie stores honour old values forever: use reject with those'
        : 'to visitors without a session still pass; sessions from before sessiongate must sign in again',
    ]),
    ...field('consistency', [
      config.consistency === 'cached'
        ? `cached: a cached "live" is trusted for up to cache.maxStaleness (${formatDuration(config.cache.maxStaleness)})`
        : 'strict: the store is asked on every request: a revocation holds on every replica at once,',
      config.consistency === 'cached'
        ? 'on replicas that did not make the revocation; strict asks the store on every request'
        : 'at the cost of a store round trip per request (README, "What it costs")',
    ]),
  ];
}

/** Where logins come from, who is told of them and how, and whether open tabs follow a sign-out. */
function tellingLines(config: Config): string[] {
  const { notify } = config;
  const header = config.locationHeader;
  const location = config.geo
    ? `${config.geo.database}: country, region and city of each login's address${header ? ` (the ${header} header's country wins)` : ''}`
    : header
      ? `the ${header} header (set geo.database for region and city)`
      : 'none (set geo.database or locationHeader)';
  const email = notify.email;
  return [
    ...field('location', [location]),
    ...field('new logins', [
      "a device or country not among the user's last 20 of 90 days is flagged newDevice / newLocation",
      '(session list, audit, webhook); a first login never is',
    ]),
    ...field('webhook', [
      notify.webhook ? `${redactUrl(notify.webhook.url)} for ${notify.webhook.events.join(', ')}` : 'none',
    ]),
    ...field('e-mail', [
      email
        ? `to ${'template' in email.to ? email.to.template : `the address the login names (${describeUser(email.to)})`} for ${email.events.join(', ')}, via ${redactUrl(email.smtp)}`
        : 'none',
    ]),
    ...field('not me', [
      notify.baseUrl
        ? `links on ${notify.baseUrl}, valid ${formatDuration(notify.notMe.ttl)}, once; they end every session of the user`
        : 'none (needs notify.baseUrl)',
    ]),
    ...field('liveSignOut', [
      config.ui.liveSignOut
        ? "on: a live session's HTML pages follow its end at once (a script and an event stream)"
        : 'off: an open tab learns of its session ending at its next request',
    ]),
  ];
}

/** The whole explanation, one line per array element. */
export function explain(config: Config): string[] {
  const caseSensitive = config.routes.caseSensitive;
  const rules: PathOptions = { caseSensitive, suffixes: true };
  const out: string[] = [
    'How paths are matched',
    '  the request path is normalised first (percent-decoding, dot segments and repeated slashes',
    '  removed, ;params dropped); a trailing slash is the same path',
    caseSensitive
      ? '  case-sensitive (routes.caseSensitive: true): /LOGIN is not /login'
      : '  case-insensitive (routes.caseSensitive: false): /LOGIN is /login, as express, IIS and many routers route',
    '  the last literal segment of a rule or protect pattern also matches <segment>.<suffix> (/login.json)',
  ];
  const section = (lines: string[]) => out.push('', ...lines);
  config.login.forEach((r, i) => section(loginLines(r, i, rules)));
  config.refresh.forEach((r, i) => section(refreshLines(r, i, rules)));
  config.logout.forEach((r, i) => section(logoutLines(r, i, rules)));
  section([
    'Request tokens (tokens), in order',
    '  the first one a request carries is its token; any others it carries are checked too',
    ...config.tokens.map((t, i) => `  ${i + 1}. ${describeRequestToken(t)}`),
  ]);
  const { paths, except } = config.protect;
  section([
    'Protected paths (protect)',
    ...paths.flatMap((p) => field('path', [p, ...describePattern(p, rules)])),
    ...except.flatMap((p) => field('except', [p, ...describePattern(p, { caseSensitive, suffixes: false })])),
    ...(except.length ? ['  an except pattern wins over every path pattern'] : []),
  ]);
  section(['Store', `  ${describeStore(config.store)}`]);
  section(['Policy', ...policyLines(config)]);
  section(['Telling the user', ...tellingLines(config)]);
  return out;
}
