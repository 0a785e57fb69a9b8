/**
 * Addresses and names `sessiongate check` must refuse with their key paths instead of letting startup
 * crash or a setting silently mean something else: trusted proxies (IPs and CIDR ranges), Redis
 * `host:port` lists, the webhook's URL and event names.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { WEBHOOK_EVENTS, type ConfigInput } from '../../src/config/schema.js';
import { ConfigError, type ConfigProblem } from '../../src/errors.js';
import { compileTrustedProxies } from '../../src/proxy/client-address.js';
import { JSON_LOGIN_RULE } from '../support/login-rules.js';

const MINIMAL = {
  upstream: 'http://127.0.0.1:3000',
  secret: 'a-secret-of-sixteen+',
  login: [JSON_LOGIN_RULE],
} satisfies ConfigInput;

const WEBHOOK = { url: 'https://hooks.example/sg', secret: 'webhook-secret-0123456789' };

function problemsOf(raw: Record<string, unknown>): ConfigProblem[] {
  try {
    parseConfig({ ...MINIMAL, ...raw }, {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('trustedProxies', () => {
  it('accepts IPv4 and IPv6 addresses and CIDR ranges', () => {
    const entries = ['127.0.0.1', '10.0.0.0/8', '0.0.0.0/0', '::1', 'fd00::/8', '::ffff:10.0.0.1'];
    expect(parseConfig({ ...MINIMAL, trustedProxies: entries }, {}).config.trustedProxies).toEqual(entries);
  });

  it('refuses an entry that is not an IP or a CIDR range, naming each by its key path', () => {
    const bad = [
      'nonsense',
      'proxy.internal',
      '10.0.0.0/',
      '10.0.0.0/33',
      '::1/129',
      '10.0.0.0/8/8',
      '10.0.0.0/-1',
      ' 10.0.0.1',
      'fe80::1%eth0',
      '[::1]',
    ];
    const problems = problemsOf({ trustedProxies: ['127.0.0.1', ...bad] });
    expect(problems.map((p) => p.path)).toEqual(bad.map((_, i) => `trustedProxies[${i + 1}]`));
    expect(problems[0]?.message).toBe(
      'expected an IP address or a CIDR range (10.0.0.0/8, fd00::/8), got "nonsense"',
    );
    expect(problems[3]?.message).toBe('expected a prefix length from 0 to 32 after "/", got "10.0.0.0/33"');
  });

  it('compiles what check accepts, and matches peers against ranges of both families', () => {
    const trusted = compileTrustedProxies(['10.0.0.0/8', 'fd00::/8', '::ffff:192.168.1.7']);
    expect(trusted.isTrusted('10.20.30.40')).toBe(true);
    expect(trusted.isTrusted('::ffff:10.20.30.40')).toBe(true);
    expect(trusted.isTrusted('11.0.0.1')).toBe(false);
    expect(trusted.isTrusted('fd12::1')).toBe(true);
    expect(trusted.isTrusted('fe80::1')).toBe(false);
    // An IPv4-mapped entry matches the peer as sockets report it and in its IPv4 form.
    expect(trusted.isTrusted('::ffff:192.168.1.7')).toBe(true);
    expect(trusted.isTrusted('192.168.1.7')).toBe(true);
    expect(trusted.isTrusted('not an address')).toBe(false);
  });

  it('a bad entry given to the proxy directly is a ConfigError with its key path, not a Node stack', () => {
    let error: unknown;
    try {
      compileTrustedProxies(['127.0.0.1', 'nonsense']);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.path)).toEqual(['trustedProxies[1]']);
  });
});

describe('store.cluster and store.sentinels', () => {
  it('accept host:port with a name, an IPv4 address or a bracketed IPv6 address', () => {
    const nodes = ['redis-1:6379', 'redis_node.svc.cluster.local:7000', '10.0.0.5:7001', '[fd00::5]:6379'];
    expect(parseConfig({ ...MINIMAL, store: { cluster: nodes } }, {}).config.store).toMatchObject({
      cluster: nodes,
    });
    expect(parseConfig({ ...MINIMAL, store: { sentinels: nodes } }, {}).config.store).toMatchObject({
      sentinels: nodes,
    });
  });

  it('refuse entries that are not host:port, naming each by its key path', () => {
    const bad = [
      'redis-1',
      'redis-1:0',
      'redis-1:65536',
      '::1:6379',
      '[nothost]:6379',
      'redis 1:6379',
      'redis://redis-1:6379',
    ];
    const problems = problemsOf({ store: { cluster: ['redis-0:6379', ...bad], sentinels: ['s-1'] } });
    expect(problems.map((p) => p.path).sort()).toEqual(
      ['store.sentinels[0]', ...bad.map((_, i) => `store.cluster[${i + 1}]`)].sort(),
    );
    expect(problems.find((p) => p.path === 'store.cluster[1]')?.message).toBe(
      'expected "host:port" (redis-1:6379, 10.0.0.5:6379, [fd00::5]:6379), got "redis-1"',
    );
  });
});

describe('notify.webhook', () => {
  it('keeps the URL whole: path and query (not only the origin), without the fragment', () => {
    const { config } = parseConfig(
      {
        ...MINIMAL,
        notify: { webhook: { ...WEBHOOK, url: 'https://hooks.example:8443/hooks/sg?tenant=a#ignored' } },
      },
      {},
    );
    expect(config.notify.webhook?.url).toBe('https://hooks.example:8443/hooks/sg?tenant=a');
  });

  it('refuses a URL that is not http or https', () => {
    for (const url of ['ftp://hooks.example/sg', 'mailto:ops@example.com', 'hooks.example/sg'])
      expect(problemsOf({ notify: { webhook: { ...WEBHOOK, url } } })).toEqual([
        {
          path: 'notify.webhook.url',
          message: `expected an http:// or https:// URL, got ${JSON.stringify(url)}`,
        },
      ]);
  });

  it('refuses an unknown event name, naming its key path and listing the known events', () => {
    const problems = problemsOf({
      notify: { webhook: { ...WEBHOOK, events: ['session.created', 'session.create', 'login'] } },
    });
    expect(problems.map((p) => p.path)).toEqual(['notify.webhook.events[1]', 'notify.webhook.events[2]']);
    expect(problems[0]?.message).toBe(
      'unknown event; known events: session.created, session.superseded, session.replaced, session.refused, session.ended, session.logged_out, session.expired, request.rejected, session.fixation_risk, session.new_device, session.not_me, session.warned (got "session.create")',
    );
  });

  it('accepts every session event type', () => {
    const { config } = parseConfig(
      { ...MINIMAL, notify: { webhook: { ...WEBHOOK, events: [...WEBHOOK_EVENTS] } } },
      {},
    );
    expect(config.notify.webhook?.events).toEqual(WEBHOOK_EVENTS);
  });
});
