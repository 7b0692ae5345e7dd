// Admin endpoints about the control plane itself: proxies, config, metrics, health.
import type { Endpoint, MeshModel } from '../model/types.ts';
import { analyze } from '../config/analyze.ts';
import type { ProxyTracker } from '../reconcile/proxy-tracker.ts';
import { countsOf, proxyStatus, type Change, type ChangeLog } from '../reconcile/changes.ts';
import type { SnapshotCache } from '../xds/cache/cache.ts';
import { ADS_ORDER, SHORT_NAME } from '../xds/resources/type-urls.ts';
import type { Metrics } from './metrics.ts';
import { HttpError, type AdminRoute } from './router.ts';

export interface ConfigError {
  file: string;
  line: number;
  column?: number;
  message: string;
  /** The git commit the file is from, when the config comes from git. */
  revision?: string;
}

export interface ConfigState {
  version?: string;
  appliedAt?: string;
  model?: MeshModel;
  files: string[];
  errors: ConfigError[];
  /** The git commit being served, when the config comes from git. */
  revision?: string;
}

export interface CoreRouteDeps {
  tracker: ProxyTracker;
  cache: SnapshotCache;
  metrics: Metrics;
  changes: ChangeLog;
  config: () => ConfigState;
  /** Where the config comes from (a dir, or a git branch with its fetch and apply state). */
  configSource?: () => object | undefined;
  /** Registered instances with their health, for analysis of the running config. */
  registryEndpoints: () => Endpoint[];
  /** Why the control plane is not ready (empty: ready), e.g. no config yet, store unreachable. */
  notReady: () => string[];
}

export function coreRoutes(deps: CoreRouteDeps): AdminRoute[] {
  return [
    { method: 'GET', pattern: '/healthz', handler: () => ({ status: 200, text: 'ok\n' }) },
    {
      method: 'GET',
      pattern: '/readyz',
      handler: () => {
        const reasons = deps.notReady();
        return reasons.length === 0 ? { status: 200, text: 'ready\n' } : { status: 503, text: `not ready: ${reasons.join('; ')}\n` };
      },
    },
    {
      method: 'GET',
      pattern: '/metrics',
      handler: async () => {
        const latest = deps.changes.latest();
        if (latest) for (const [status, n] of Object.entries(countsOf(latest))) if (status !== 'affected') deps.metrics.changeProxies.set({ status }, n);
        return {
          status: 200,
          text: await deps.metrics.registry.metrics(),
          contentType: deps.metrics.registry.contentType,
        };
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/analyze',
      handler: () => {
        const model = deps.config().model;
        return { status: 200, json: { findings: model ? analyze({ model, registry: deps.registryEndpoints() }) : [] } };
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/changes',
      handler: () => ({ status: 200, json: { changes: deps.changes.list().map(changeSummary) } }),
    },
    {
      method: 'GET',
      pattern: '/api/v1/changes/{version}',
      handler: ({ params }) => {
        const change = params.version === 'latest' ? deps.changes.latest() : deps.changes.get(params.version);
        if (!change) throw new HttpError(404, `no change ${JSON.stringify(params.version)} is remembered (see GET /api/v1/changes)`, 'TESSERA_ERR_NOT_FOUND');
        return {
          status: 200,
          json: { ...changeSummary(change), proxies: change.proxies.map((p) => ({ ...p, status: proxyStatus(p) })) },
        };
      },
    },
    { method: 'GET', pattern: '/api/v1/proxies', handler: () => ({ status: 200, json: { proxies: deps.tracker.list() } }) },
    {
      method: 'GET',
      pattern: '/api/v1/proxies/{nodeId}/config',
      handler: ({ params }) => {
        const proxy = deps.tracker.find(params.nodeId);
        if (!proxy) throw new HttpError(404, `no connected proxy has node id ${JSON.stringify(params.nodeId)}`, 'TESSERA_ERR_NOT_FOUND');
        const snapshot = deps.cache.getSnapshot(proxy.group);
        const resources: Record<string, unknown[]> = {};
        for (const typeUrl of ADS_ORDER) {
          const type = snapshot?.get(typeUrl);
          if (type && type.resources.size > 0) resources[SHORT_NAME[typeUrl]] = [...type.resources.values()].map((r) => r.object);
        }
        return { status: 200, json: { nodeId: proxy.nodeId, group: proxy.group, version: snapshot?.version, resources } };
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/config',
      handler: () => {
        const state = deps.config();
        return {
          status: 200,
          json: {
            version: state.version,
            appliedAt: state.appliedAt,
            revision: state.revision,
            source: deps.configSource?.(),
            files: state.files,
            resources: state.model ? describeModel(state.model) : [],
            errors: state.errors,
          },
        };
      },
    },
  ];
}

function changeSummary(c: Change) {
  return { version: c.version, kind: c.kind, appliedAt: c.appliedAt, services: c.services, note: c.note, ...countsOf(c) };
}

function describeModel(model: MeshModel) {
  const at = (s?: { file: string; line: number }) => (s ? `${s.file}:${s.line}` : undefined);
  return [
    ...model.services.map((s) => ({ kind: 'Service', namespace: s.namespace, name: s.name, source: at(s.source), spec: { ports: s.ports } })),
    ...model.routes.map((r) => ({ kind: r.kind, namespace: r.namespace, name: r.name, source: at(r.source), spec: { parents: r.parents, rules: r.rules } })),
    ...model.policies.map((p) => ({ kind: 'TrafficPolicy', namespace: p.namespace, name: p.name, source: at(p.source), spec: { ...p, source: undefined } })),
    ...(model.authorizationPolicies ?? []).map((p) => ({
      kind: 'AuthorizationPolicy',
      namespace: p.namespace,
      name: p.name,
      source: at(p.source),
      spec: { targets: p.targets, action: p.action, rules: p.rules },
    })),
    ...(model.canaries ?? []).map((c) => ({ kind: 'Canary', namespace: c.namespace, name: c.name, source: at(c.source), spec: { ...c, source: undefined } })),
  ];
}
