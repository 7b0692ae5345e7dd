// Validated documents -> mesh model objects. References between documents are
// collected here and checked once every file is read (checks.ts).
import {
  DEFAULT_MTLS_MODE,
  DEFAULT_TRUST_DOMAIN,
  type AppProtocol,
  type BackendRef,
  type CanarySpec,
  type CanaryTest,
  type Endpoint,
  type HeaderModifier,
  type MeshModel,
  type RetryPolicy,
  type Route,
  type RouteFilter,
  type RouteMatch,
  type RouteRule,
  type Telemetry,
  type TrafficPolicy,
} from '../model/types.ts';
import { convertAuthorizationPolicy } from './convert-authorization.ts';
import { analysisProvider } from './convert-analysis-provider.ts';
import { strategyFields } from './convert-parallel-run.ts';
import { formatProblem } from './access-log-format.ts';
import { parseDuration } from './duration.ts';
import type { Locate } from './load.ts';

export interface Reference {
  /** What refers, for the message: "HTTPRoute default/reviews: backendRef". */
  from: string;
  service: string;
  namespace: string;
  port?: number;
  file: string;
  line: number;
  column: number;
}

export interface RegexUse {
  regex: string;
  from: string;
  file: string;
  line: number;
  column: number;
}

export interface ConvertContext {
  file: string;
  locate: Locate;
  error: (at: (string | number)[], message: string) => void;
  model: MeshModel;
  refs: Reference[];
  regexes: RegexUse[];
}

// biome-ignore lint/suspicious/noExplicitAny: documents are checked against their JSON schema (ajv) before conversion
type Doc = Record<string, any>;

/** Istio users expect a route retry to cover connection failures and resets too. */
export const ROUTE_RETRY_ON = ['connect-failure', 'refused-stream', 'reset'];

export function convertDocument(kind: string, doc: Doc, ctx: ConvertContext): void {
  switch (kind) {
    case 'Service':
      convertService(doc, ctx);
      return;
    case 'EndpointSlice':
      convertEndpointSlice(doc, ctx);
      return;
    case 'HTTPRoute':
    case 'GRPCRoute':
      convertRoute(kind, doc, ctx);
      return;
    case 'TrafficPolicy':
      convertTrafficPolicy(doc, ctx);
      return;
    case 'MeshConfig':
      convertMeshConfig(doc, ctx);
      return;
    case 'AuthorizationPolicy':
      convertAuthorizationPolicy(doc, ctx);
      return;
    case 'Telemetry':
      convertTelemetry(doc, ctx);
      return;
    case 'Canary':
      convertCanary(doc, ctx);
      return;
  }
}

const namespaceOf = (doc: Doc) => (doc.metadata.namespace as string | undefined) ?? 'default';
const source = (ctx: ConvertContext, at: (string | number)[] = ['metadata', 'name']) => ({ file: ctx.file, line: ctx.locate(at).line });

function reference(ctx: ConvertContext, from: string, at: (string | number)[], ref: { name: string; namespace?: string; port?: number }, namespace: string) {
  ctx.refs.push({ from, service: ref.name, namespace: ref.namespace ?? namespace, port: ref.port, file: ctx.file, ...ctx.locate(at) });
}

function regex(ctx: ConvertContext, from: string, at: (string | number)[], value: string) {
  ctx.regexes.push({ regex: value, from, file: ctx.file, ...ctx.locate(at) });
}

const SERVICE_ACCOUNTS_ANNOTATION = 'tessera.dev/service-accounts';

function serviceAccounts(doc: Doc, ctx: ConvertContext): { serviceAccounts?: string[] } {
  const raw = doc.metadata.annotations?.[SERVICE_ACCOUNTS_ANNOTATION] as string | undefined;
  if (raw === undefined) return {};
  const names = raw.split(',').map((n) => n.trim());
  const bad = names.find((n) => !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(n));
  if (bad !== undefined) {
    ctx.error(['metadata', 'annotations', SERVICE_ACCOUNTS_ANNOTATION], `Service ${doc.metadata.name}: ${SERVICE_ACCOUNTS_ANNOTATION} must list service-account names separated by commas, got ${JSON.stringify(bad)}`);
    return {};
  }
  return { serviceAccounts: [...new Set(names)].sort() };
}

function convertService(doc: Doc, ctx: ConvertContext): void {
  const appProtocol = (p: Doc): AppProtocol => (p.appProtocol === 'kubernetes.io/h2c' ? 'http2' : (p.appProtocol ?? 'http'));
  ctx.model.services.push({
    name: doc.metadata.name,
    namespace: namespaceOf(doc),
    ports: doc.spec.ports.map((p: Doc) => ({ name: p.name, port: p.port, targetPort: p.targetPort ?? p.port, appProtocol: appProtocol(p) })),
    ...serviceAccounts(doc, ctx),
    source: source(ctx),
  });
}

function convertEndpointSlice(doc: Doc, ctx: ConvertContext): void {
  const service = doc.metadata.labels?.['kubernetes.io/service-name'];
  if (!service) {
    ctx.error(['metadata'], `EndpointSlice ${doc.metadata.name}: needs the label kubernetes.io/service-name naming its Service`);
    return;
  }
  if (doc.addressType === 'FQDN') {
    ctx.error(['addressType'], `EndpointSlice ${doc.metadata.name}: addressType FQDN is not supported; list IP addresses`);
    return;
  }
  const namespace = namespaceOf(doc);
  reference(ctx, `EndpointSlice ${namespace}/${doc.metadata.name}`, ['metadata', 'labels', 'kubernetes.io/service-name'], { name: service }, namespace);
  doc.endpoints.forEach((e: Doc, ei: number) => {
    e.addresses.forEach((address: string, ai: number) => {
      if (!isIp(address, doc.addressType)) ctx.error(['endpoints', ei, 'addresses', ai], `EndpointSlice ${doc.metadata.name}: ${JSON.stringify(address)} is not an ${doc.addressType} address`);
      for (const p of doc.ports as Doc[]) {
        const endpoint: Endpoint = {
          id: `${doc.metadata.name}-${address}:${p.port}`,
          service,
          namespace,
          address,
          port: p.port,
          labels: { ...(doc.metadata.labels ?? {}) },
          zone: e.zone,
          health: e.conditions?.ready === false ? 'unhealthy' : 'healthy',
          source: 'file',
        };
        if (p.name) endpoint.labels['tessera.dev/port-name'] = p.name;
        ctx.model.endpoints.push(endpoint);
      }
    });
  });
}

function isIp(address: string, type: string): boolean {
  if (type === 'IPv4') return /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(address);
  return /^[0-9a-fA-F:.]+$/.test(address) && address.includes(':');
}

function convertRoute(kind: 'HTTPRoute' | 'GRPCRoute', doc: Doc, ctx: ConvertContext): void {
  const namespace = namespaceOf(doc);
  const name = `${kind} ${namespace}/${doc.metadata.name}`;
  const parents = (doc.spec.parentRefs as Doc[]).map((p, i) => {
    reference(ctx, `${name}: parentRef`, ['spec', 'parentRefs', i, 'name'], p as { name: string }, namespace);
    return { service: p.name as string, namespace: (p.namespace as string) ?? namespace, port: p.port as number | undefined };
  });
  const rules: RouteRule[] = ((doc.spec.rules ?? [{}]) as Doc[]).map((rule, ri) => {
    const at = (...rest: (string | number)[]) => ['spec', 'rules', ri, ...rest];
    const matches: RouteMatch[] = ((rule.matches ?? []) as Doc[]).map((m, mi) =>
      kind === 'HTTPRoute' ? httpMatch(m, ctx, name, at('matches', mi)) : grpcMatch(m, ctx, name, at('matches', mi)),
    );
    const backends: BackendRef[] = ((rule.backendRefs ?? []) as Doc[]).map((b, bi) => {
      reference(ctx, `${name}: backendRef`, at('backendRefs', bi, 'name'), b as { name: string }, namespace);
      return { service: b.name, namespace: b.namespace ?? namespace, port: b.port, weight: b.weight ?? 1 };
    });
    const filters = ((rule.filters ?? []) as Doc[]).flatMap((f, fi) => convertFilter(f, ctx, name, at('filters', fi), namespace));
    const redirects = filters.some((f) => f.type === 'RequestRedirect');
    if (backends.length === 0 && !redirects) ctx.error(at(), `${name}: rule ${ri} has no backendRefs (and no RequestRedirect)`);
    if (backends.length > 0 && backends.every((b) => b.weight === 0)) {
      ctx.error(at('backendRefs'), `${name}: rule ${ri} gives every backendRef weight 0; give one a positive weight`);
    }
    const out: RouteRule = { matches, backends, filters };
    if (rule.timeouts) {
      out.timeouts = {};
      if (rule.timeouts.request) out.timeouts.requestMs = parseDuration(rule.timeouts.request);
      if (rule.timeouts.backendRequest) out.timeouts.backendRequestMs = parseDuration(rule.timeouts.backendRequest);
    }
    if (rule.retry) {
      const retry: RetryPolicy = {
        attempts: rule.retry.attempts ?? 1,
        codes: rule.retry.codes ?? [],
        retryOn: kind === 'GRPCRoute' ? ['unavailable', 'cancelled', 'deadline-exceeded'] : ROUTE_RETRY_ON,
      };
      if (rule.retry.backoff) retry.backoff = { baseIntervalMs: parseDuration(rule.retry.backoff) };
      if (out.timeouts?.backendRequestMs) retry.perTryTimeoutMs = out.timeouts.backendRequestMs;
      out.retry = retry;
    }
    return out;
  });
  const route: Route = { kind, name: doc.metadata.name, namespace, parents, rules, source: source(ctx) };
  ctx.model.routes.push(route);
}

function httpMatch(m: Doc, ctx: ConvertContext, name: string, at: (string | number)[]): RouteMatch {
  const match: RouteMatch = { headers: [], queryParams: [] };
  if (m.path) {
    const type = m.path.type ?? 'PathPrefix';
    const value = m.path.value ?? '/';
    if (type === 'RegularExpression') regex(ctx, `${name}: path`, [...at, 'path', 'value'], value);
    else if (!value.startsWith('/')) ctx.error([...at, 'path', 'value'], `${name}: path ${JSON.stringify(value)} must start with /`);
    match.path = { type, value };
  }
  match.headers = stringMatches(m.headers, ctx, `${name}: header`, [...at, 'headers']);
  match.queryParams = stringMatches(m.queryParams, ctx, `${name}: query param`, [...at, 'queryParams']);
  if (m.method) match.method = m.method;
  return match;
}

function stringMatches(list: Doc[] | undefined, ctx: ConvertContext, from: string, at: (string | number)[]) {
  return (list ?? []).map((h, i) => {
    const type = h.type ?? 'Exact';
    if (type === 'RegularExpression') regex(ctx, `${from} ${h.name}`, [...at, i, 'value'], h.value);
    return { type, name: h.name, value: h.value };
  });
}

/** gRPC calls are HTTP/2 POSTs to `/package.Service/Method`. */
function grpcMatch(m: Doc, ctx: ConvertContext, name: string, at: (string | number)[]): RouteMatch {
  const match: RouteMatch = { headers: stringMatches(m.headers, ctx, `${name}: header`, [...at, 'headers']), queryParams: [] };
  const method = m.method;
  if (method) {
    if (!method.service && !method.method) ctx.error([...at, 'method'], `${name}: a method match needs service, method or both`);
    if ((method.type ?? 'Exact') === 'RegularExpression') {
      const value = `/${method.service ?? '[^/]+'}/${method.method ?? '[^/]+'}`;
      regex(ctx, `${name}: method`, [...at, 'method'], value);
      match.path = { type: 'RegularExpression', value };
    } else if (method.service && method.method) match.path = { type: 'Exact', value: `/${method.service}/${method.method}` };
    else if (method.service) match.path = { type: 'PathPrefix', value: `/${method.service}` };
    else match.path = { type: 'RegularExpression', value: `/[^/]+/${escapeRegex(method.method)}` };
  }
  return match;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function headerModifier(m: Doc | undefined): HeaderModifier {
  return { set: m?.set ?? [], add: m?.add ?? [], remove: m?.remove ?? [] };
}

function pathModifier(p: Doc | undefined, ctx: ConvertContext, name: string, at: (string | number)[]) {
  if (!p) return undefined;
  const value = p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch;
  if (typeof value !== 'string') {
    ctx.error(at, `${name}: path type ${p.type} needs ${p.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch'}`);
    return undefined;
  }
  return { type: p.type as 'ReplaceFullPath' | 'ReplacePrefixMatch', value };
}

function convertFilter(f: Doc, ctx: ConvertContext, name: string, at: (string | number)[], namespace: string): RouteFilter[] {
  const field = f.type.charAt(0).toLowerCase() + f.type.slice(1);
  const config = f.type === 'URLRewrite' ? f.urlRewrite : f[field];
  if (!config) {
    ctx.error(at, `${name}: filter ${f.type} needs its ${f.type === 'URLRewrite' ? 'urlRewrite' : field} settings`);
    return [];
  }
  switch (f.type) {
    case 'RequestHeaderModifier':
      return [{ type: 'RequestHeaderModifier', requestHeaderModifier: headerModifier(config) }];
    case 'ResponseHeaderModifier':
      return [{ type: 'ResponseHeaderModifier', responseHeaderModifier: headerModifier(config) }];
    case 'RequestMirror': {
      const b = config.backendRef;
      reference(ctx, `${name}: RequestMirror backendRef`, [...at, 'requestMirror', 'backendRef', 'name'], b, namespace);
      return [{ type: 'RequestMirror', requestMirror: { backend: { service: b.name, namespace: b.namespace ?? namespace, port: b.port, weight: 1 }, percent: config.percent } }];
    }
    case 'URLRewrite':
      return [{ type: 'URLRewrite', urlRewrite: { hostname: config.hostname, path: pathModifier(config.path, ctx, name, [...at, 'urlRewrite', 'path']) } }];
    case 'RequestRedirect':
      return [
        {
          type: 'RequestRedirect',
          requestRedirect: {
            scheme: config.scheme,
            hostname: config.hostname,
            port: config.port,
            statusCode: config.statusCode,
            path: pathModifier(config.path, ctx, name, [...at, 'requestRedirect', 'path']),
          },
        },
      ];
  }
  return [];
}

function convertTrafficPolicy(doc: Doc, ctx: ConvertContext): void {
  const namespace = namespaceOf(doc);
  const name = `TrafficPolicy ${namespace}/${doc.metadata.name}`;
  const s = doc.spec;
  const targets = (s.targetRefs as Doc[]).map((t, i) => {
    reference(ctx, `${name}: targetRef`, ['spec', 'targetRefs', i, 'name'], t as { name: string }, namespace);
    return { service: t.name as string, namespace: (t.namespace as string) ?? namespace };
  });
  const ms = (v: string | undefined) => (v === undefined ? undefined : parseDuration(v));
  const policy: TrafficPolicy = { name: doc.metadata.name, namespace, targets, source: source(ctx) };
  if (s.connectTimeout) policy.connectTimeoutMs = ms(s.connectTimeout);
  if (s.timeout) policy.timeoutMs = ms(s.timeout);
  if (s.retry) {
    policy.retry = { attempts: s.retry.attempts, codes: s.retry.codes, retryOn: s.retry.retryOn, perTryTimeoutMs: ms(s.retry.perTryTimeout) };
    if (s.retry.backoff) policy.retry.backoff = { baseIntervalMs: ms(s.retry.backoff.baseInterval)!, maxIntervalMs: ms(s.retry.backoff.maxInterval) };
    for (const k of Object.keys(policy.retry) as (keyof RetryPolicy)[]) if (policy.retry[k] === undefined) delete policy.retry[k];
  }
  if (s.connectionPool) policy.connectionPool = { ...s.connectionPool };
  if (s.outlierDetection) {
    const o = s.outlierDetection;
    policy.outlierDetection = {
      consecutive5xxErrors: o.consecutive5xxErrors,
      intervalMs: ms(o.interval),
      baseEjectionTimeMs: ms(o.baseEjectionTime),
      maxEjectionPercent: o.maxEjectionPercent,
    };
  }
  if (s.loadBalancer) {
    policy.loadBalancer = { policy: s.loadBalancer.policy, hashOn: s.loadBalancer.hashOn };
    if (s.loadBalancer.hashOn && s.loadBalancer.policy !== 'RingHash') {
      ctx.error(['spec', 'loadBalancer', 'hashOn'], `${name}: hashOn needs policy RingHash`);
    }
  }
  if (s.healthCheck) {
    const h = s.healthCheck;
    const kinds = ['http', 'tcp', 'grpc'].filter((k) => h[k] !== undefined && h[k] !== false);
    if (kinds.length !== 1) ctx.error(['spec', 'healthCheck'], `${name}: healthCheck needs exactly one of http, tcp, grpc`);
    policy.healthCheck = {
      http: h.http,
      tcp: h.tcp,
      grpc: h.grpc,
      intervalMs: ms(h.interval) ?? 10_000,
      timeoutMs: ms(h.timeout) ?? 1000,
      healthyThreshold: h.healthyThreshold ?? 1,
      unhealthyThreshold: h.unhealthyThreshold ?? 2,
    };
  }
  ctx.model.policies.push(policy);
}

const MIN_CERTIFICATE_LIFETIME_MS = 60_000;
const MAX_CERTIFICATE_LIFETIME_MS = 90 * 24 * 3600_000;

function convertMeshConfig(doc: Doc, ctx: ConvertContext): void {
  const name = `MeshConfig ${doc.metadata.name}`;
  const spec = doc.spec ?? {};
  if (spec.targetRefs) {
    for (const field of ['trustDomain', 'certificateLifetime'] as const) {
      if (spec[field] !== undefined) ctx.error(['spec', field], `${name}: ${field} is mesh-wide; a MeshConfig with targetRefs sets only mtls.mode`);
    }
    if (!spec.mtls) {
      ctx.error(['spec'], `${name}: a MeshConfig with targetRefs must set mtls.mode`);
      return;
    }
    const namespace = namespaceOf(doc);
    const targets = (spec.targetRefs as Doc[]).map((t, i) => {
      reference(ctx, `${name}: targetRef`, ['spec', 'targetRefs', i, 'name'], t as { name: string }, namespace);
      return { service: t.name as string, namespace: (t.namespace as string | undefined) ?? namespace };
    });
    (ctx.model.mtlsOverrides ??= []).push({ name: doc.metadata.name, targets, mode: spec.mtls.mode, source: source(ctx) });
    return;
  }
  if (ctx.model.meshConfig) {
    ctx.error(['metadata', 'name'], `${name}: only one mesh-wide MeshConfig may exist (one without targetRefs)`);
    return;
  }
  const certificateLifetimeMs = parseDuration(spec.certificateLifetime ?? '24h');
  if (certificateLifetimeMs < MIN_CERTIFICATE_LIFETIME_MS || certificateLifetimeMs > MAX_CERTIFICATE_LIFETIME_MS) {
    ctx.error(['spec', 'certificateLifetime'], `${name}: certificateLifetime must be between 1m and 2160h (90 days), got ${spec.certificateLifetime}`);
    return;
  }
  ctx.model.meshConfig = {
    trustDomain: spec.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    mtlsMode: spec.mtls?.mode ?? DEFAULT_MTLS_MODE,
    certificateLifetimeMs,
  };
}

/** A JSON key of the access log: plain words, so every log reader can address it. */
const ACCESS_LOG_FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

function convertTelemetry(doc: Doc, ctx: ConvertContext): void {
  const namespace = namespaceOf(doc);
  const name = `Telemetry ${namespace}/${doc.metadata.name}`;
  const s = doc.spec;
  const targets = ((s.targetRefs ?? []) as Doc[]).map((t, i) => {
    reference(ctx, `${name}: targetRef`, ['spec', 'targetRefs', i, 'name'], t as { name: string }, namespace);
    return { service: t.name as string, namespace: (t.namespace as string) ?? namespace };
  });
  const telemetry: Telemetry = { name: doc.metadata.name, namespace, targets, source: source(ctx) };
  if (s.accessLog) {
    const a = s.accessLog;
    if (a.path !== undefined && !a.path.startsWith('/')) {
      ctx.error(['spec', 'accessLog', 'path'], `${name}: accessLog.path ${JSON.stringify(a.path)} must be absolute (a file, or /dev/stdout)`);
    }
    for (const [field, format] of Object.entries((a.fields ?? {}) as Record<string, string>)) {
      if (!ACCESS_LOG_FIELD_NAME.test(field)) {
        ctx.error(['spec', 'accessLog', 'fields', field], `${name}: accessLog field name ${JSON.stringify(field)} must be letters, digits, '_', '.' or '-' (at most 64)`);
      }
      const problem = formatProblem(format);
      if (problem) ctx.error(['spec', 'accessLog', 'fields', field], `${name}: accessLog field ${field}: ${problem}`);
    }
    telemetry.accessLog = { disabled: a.disabled, path: a.path, fields: a.fields };
  }
  if (s.tracing) {
    const tr = s.tracing;
    const address = tr.otlp?.address as string | undefined;
    if (address !== undefined) {
      const problem = hostPortProblem(address);
      if (problem) ctx.error(['spec', 'tracing', 'otlp', 'address'], `${name}: tracing.otlp.address ${JSON.stringify(address)} ${problem}`);
    }
    telemetry.tracing = { disabled: tr.disabled, otlpAddress: address, samplingPercent: tr.samplingPercent, serviceName: tr.serviceName };
  }
  ctx.model.telemetry ??= [];
  ctx.model.telemetry.push(telemetry);
}

/** `HOST:PORT` with an IPv4 address, a bracketed IPv6 address or a DNS name. */
export function hostPortProblem(address: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(address);
  if (!m) return 'is not HOST:PORT (e.g. 127.0.0.1:4317 or otel-collector:4317)';
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `has port ${port}, outside 1-65535`;
  const host = m[1];
  if (host.startsWith('[') || /^[0-9.]+$/.test(host)) {
    if (!host.startsWith('[') && !isIp(host, 'IPv4')) return `has ${JSON.stringify(host)}, which is not an IPv4 address`;
    return undefined;
  }
  if (!/^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/.test(host)) {
    return `has ${JSON.stringify(host)}, which is neither an IP address nor a DNS name`;
  }
  return undefined;
}

/** Shortest interval a Canary may use: sidecars report every few seconds, and an
 *  interval must hold at least one report to judge. */
export const MIN_CANARY_INTERVAL_MS = 1000;

function convertCanary(doc: Doc, ctx: ConvertContext): void {
  const namespace = namespaceOf(doc);
  const name = `Canary ${namespace}/${doc.metadata.name}`;
  const s = doc.spec;
  const strategy = s.strategy ?? 'Canary';
  const target = { service: s.targetRef.name as string, namespace: (s.targetRef.namespace as string | undefined) ?? namespace };
  const stable = { service: s.stable.name as string, namespace };
  const canary = { service: s.canary.name as string, namespace };
  reference(ctx, `${name}: targetRef`, ['spec', 'targetRef', 'name'], s.targetRef, namespace);
  reference(ctx, `${name}: stable`, ['spec', 'stable', 'name'], s.stable, namespace);
  reference(ctx, `${name}: canary`, ['spec', 'canary', 'name'], s.canary, namespace);
  let ok = true;
  const fail = (at: (string | number)[], message: string) => {
    ctx.error(at, `${name}: ${message}`);
    ok = false;
  };
  if (target.namespace !== namespace) fail(['spec', 'targetRef', 'namespace'], 'targetRef must be in the Canary\'s own namespace');
  if (stable.service === canary.service) fail(['spec', 'canary', 'name'], `canary and stable are the same Service (${canary.service})`);
  if (target.service === stable.service || target.service === canary.service) {
    fail(['spec', 'targetRef', 'name'], `targetRef ${target.service} must be the Service clients call, not the stable or canary backend`);
  }
  const perStrategy = strategyFields(strategy, s, fail);
  const test = strategy === 'ParallelRun' ? undefined : canaryTest(s, ctx, name, fail);
  const steps = (s.steps ?? []) as number[];
  steps.forEach((w, i) => {
    if (i > 0 && w <= steps[i - 1]) fail(['spec', 'steps', i], `steps must increase (step ${i} is ${w}, after ${steps[i - 1]})`);
  });
  const intervalMs = parseDuration(s.interval);
  if (intervalMs < MIN_CANARY_INTERVAL_MS || intervalMs > 24 * 3_600_000) fail(['spec', 'interval'], `interval must be from 1s to 24h, not ${s.interval}`);
  const a = s.analysis ?? {};
  const provider = strategy === 'ParallelRun' ? undefined : analysisProvider(a, fail);
  if (!ok) return;
  const spec: CanarySpec = {
    name: doc.metadata.name,
    namespace,
    target,
    stable,
    canary,
    steps,
    ...(test ? { test } : {}),
    intervalMs,
    ...(strategy === 'ParallelRun' ? { strategy } : {}),
    ...perStrategy,
    analysis: {
      ...(a.maxMismatchPercent !== undefined ? { maxMismatchPercent: a.maxMismatchPercent } : {}),
      minRequests: a.minRequests ?? 0,
      failureLimit: a.failureLimit ?? 1,
      ...(a.successRate ? { successRateMin: a.successRate.min } : {}),
      ...(a.latencyP99 ? { latencyP99MaxMs: parseDuration(a.latencyP99.max) } : {}),
      ...(provider ? { provider } : {}),
    },
    source: source(ctx),
  };
  (ctx.model.canaries ??= []).push(spec);
}

/** The test traffic of an A/B (strategy Canary with match) or BlueGreen Canary, or
 *  undefined for weighted steps; every field that does not fit the mode is refused. */
function canaryTest(s: Doc, ctx: ConvertContext, name: string, fail: (at: (string | number)[], message: string) => void): CanaryTest | undefined {
  const strategy = (s.strategy ?? 'Canary') as 'Canary' | 'BlueGreen';
  const match = s.match as Doc[] | undefined;
  const mirror = s.mirror === true;
  if (strategy === 'Canary' && match === undefined) {
    if (s.steps === undefined) fail(['spec'], "spec: missing required field 'steps' (strategy Canary moves traffic by weighted steps; for A/B give match and iterations instead)");
    if (s.iterations !== undefined) fail(['spec', 'iterations'], 'iterations is for A/B (with match) and BlueGreen; strategy Canary with steps moves on after each step');
    if (s.mirror !== undefined) fail(['spec', 'mirror'], 'mirror is for strategy BlueGreen (the canary judged on a copy of live traffic)');
    return undefined;
  }
  const mode = strategy === 'BlueGreen' ? 'BlueGreen' : 'A/B';
  if (s.steps !== undefined) {
    fail(['spec', 'steps'], mode === 'A/B'
      ? 'steps and match exclude each other: with match (A/B) the canary gets every matching request and nothing else until promoted; say how many passing intervals with iterations'
      : 'strategy BlueGreen has no steps: the canary gets only test traffic until promoted, then 100% at once; say how many passing intervals with iterations');
  }
  if (strategy === 'Canary' && s.mirror !== undefined) fail(['spec', 'mirror'], 'mirror is for strategy BlueGreen; strategy Canary with match sends the matching requests themselves to the canary');
  if (strategy === 'BlueGreen' && (match === undefined) === !mirror) {
    if (match !== undefined) fail(['spec', 'mirror'], 'strategy BlueGreen takes exactly one of match and mirror: true, not both');
    else fail(s.mirror === undefined ? ['spec', 'strategy'] : ['spec', 'mirror'], 'strategy BlueGreen needs exactly one of match (header-selected test traffic) and mirror: true (a copy of live traffic)');
  }
  if (s.iterations === undefined) fail(['spec'], `spec: missing required field 'iterations' (how many passing intervals before ${mode} promotes the canary)`);
  const matches = (match ?? []).map((m, i): RouteMatch => ({ headers: stringMatches(m.headers, ctx, `${name}: match header`, ['spec', 'match', i, 'headers']), queryParams: [] }));
  return { mode, ...(match ? { match: matches } : {}), ...(mirror ? { mirror: true } : {}), iterations: s.iterations ?? 1 };
}
