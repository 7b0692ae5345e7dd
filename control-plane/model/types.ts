// The typed mesh model: what config files and the registry say, independent of
// Envoy. The config loader produces it, the translator consumes it.

/** Where a model object came from, for error messages and the admin API. */
export interface SourceRef {
  file: string;
  line: number;
}

export type AppProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

export interface ServicePort {
  name?: string;
  /** What clients dial: `X:port`. */
  port: number;
  /** The instance port (EndpointSlice / registered port); defaults to `port`. */
  targetPort: number;
  appProtocol: AppProtocol;
}

export interface MeshService {
  name: string;
  namespace: string;
  ports: ServicePort[];
  /** The identities its workloads run as (annotation `tessera.dev/service-accounts`);
   *  by default the service's own name, as the agent's plain-host identity. */
  serviceAccounts?: string[];
  source?: SourceRef;
}

export type Health = 'healthy' | 'unhealthy' | 'unknown';

export interface Endpoint {
  /** Unique within its service. */
  id: string;
  service: string;
  namespace: string;
  address: string;
  port: number;
  labels: Record<string, string>;
  zone?: string;
  health: Health;
  source: 'file' | 'registry';
}

export interface StringMatch {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface PathMatch {
  type: 'Exact' | 'PathPrefix' | 'RegularExpression';
  value: string;
}

/** One Gateway API match; every present condition must hold. GRPCRoute method
 *  matches are turned into path matches by the loader (`/pkg.Service/Method`). */
export interface RouteMatch {
  path?: PathMatch;
  headers: StringMatch[];
  queryParams: StringMatch[];
  method?: string;
}

export interface BackendRef {
  /** Service name (same namespace as the route unless given). */
  service: string;
  namespace: string;
  /** Service port; when absent the service's first port. */
  port?: number;
  weight: number;
}

export interface HeaderModifier {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

export type RouteFilter =
  | { type: 'RequestHeaderModifier'; requestHeaderModifier: HeaderModifier }
  | { type: 'ResponseHeaderModifier'; responseHeaderModifier: HeaderModifier }
  | { type: 'RequestMirror'; requestMirror: { backend: BackendRef; percent?: number } }
  | {
      type: 'URLRewrite';
      urlRewrite: {
        hostname?: string;
        path?: { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; value: string };
      };
    }
  | {
      type: 'RequestRedirect';
      requestRedirect: {
        scheme?: 'http' | 'https';
        hostname?: string;
        path?: { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; value: string };
        port?: number;
        statusCode?: 301 | 302 | 303 | 307 | 308;
      };
    };

export interface RetryPolicy {
  attempts: number;
  /** HTTP status codes to retry (HTTPRoute `codes`). */
  codes: number[];
  /** Envoy retry_on conditions (connect-failure, reset, …; for gRPC: unavailable, …). */
  retryOn: string[];
  perTryTimeoutMs?: number;
  backoff?: { baseIntervalMs: number; maxIntervalMs?: number };
}

export interface RouteRule {
  /** Empty means "match everything" (Gateway API default: PathPrefix /). */
  matches: RouteMatch[];
  backends: BackendRef[];
  filters: RouteFilter[];
  timeouts?: { requestMs?: number; backendRequestMs?: number };
  retry?: RetryPolicy;
  /** Set by a ParallelRun's overlay, never by config files: mirror the rule's requests
   *  to the comparator (`MeshModel.comparator`), this percent of them. */
  comparatorMirror?: { percent: number };
}

/** An HTTPRoute or GRPCRoute attached to Services (GAMMA: parentRefs of kind Service). */
export interface Route {
  kind: 'HTTPRoute' | 'GRPCRoute';
  name: string;
  namespace: string;
  parents: { service: string; namespace: string; port?: number }[];
  rules: RouteRule[];
  source?: SourceRef;
}

export interface TrafficPolicy {
  name: string;
  namespace: string;
  /** Services this policy applies to. */
  targets: { service: string; namespace: string }[];
  connectTimeoutMs?: number;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  connectionPool?: {
    maxConnections?: number;
    maxPendingRequests?: number;
    maxRequests?: number;
    maxRetries?: number;
  };
  outlierDetection?: {
    consecutive5xxErrors?: number;
    intervalMs?: number;
    baseEjectionTimeMs?: number;
    maxEjectionPercent?: number;
  };
  loadBalancer?: {
    policy: 'RoundRobin' | 'LeastRequest' | 'Random' | 'RingHash';
    hashOn?: { header?: string; cookie?: string; sourceIp?: boolean };
  };
  healthCheck?: {
    http?: string;
    tcp?: boolean;
    grpc?: boolean;
    intervalMs: number;
    timeoutMs: number;
    healthyThreshold: number;
    unhealthyThreshold: number;
  };
  source?: SourceRef;
}

/** Where a request comes from: every present field must match (lists are OR). */
export interface AuthorizationSource {
  /** Full SPIFFE IDs, or Istio's wildcards: `*`, `prefix*`, `*suffix`. */
  principals?: string[];
  notPrincipals?: string[];
  serviceAccounts?: { name: string; namespace: string }[];
  notServiceAccounts?: { name: string; namespace: string }[];
  namespaces?: string[];
  notNamespaces?: string[];
}

/** What a request asks for: every present field must match (lists are OR). */
export interface AuthorizationOperation {
  methods?: string[];
  notMethods?: string[];
  /** Exact, `prefix*`, `*suffix` or `*` (as Istio). */
  paths?: string[];
  notPaths?: string[];
  /** Instance ports (the Service's targetPort), where the sidecar receives the request. */
  ports?: number[];
  notPorts?: number[];
  source?: SourceRef;
}

/** `when: [{key: request.headers[NAME], values|notValues}]`; values as paths. */
export interface AuthorizationCondition {
  header: string;
  values?: string[];
  notValues?: string[];
  source?: SourceRef;
}

/** A rule matches when its from, to and when all match; empty lists match anything. */
export interface AuthorizationRule {
  from: AuthorizationSource[];
  to: AuthorizationOperation[];
  when: AuthorizationCondition[];
}

/** Istio's AuthorizationPolicy, enforced by the inbound side of sidecars. */
export interface AuthorizationPolicy {
  name: string;
  namespace: string;
  /** Services whose sidecars enforce it; empty: every workload of the namespace. */
  targets: { service: string; namespace: string }[];
  action: 'ALLOW' | 'DENY';
  /** No rules: an ALLOW policy allows nothing, a DENY policy denies nothing. */
  rules: AuthorizationRule[];
  source?: SourceRef;
}


export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export interface MeshConfig {
  trustDomain: string;
  mtlsMode: MtlsMode;
  certificateLifetimeMs: number;
}

/** A MeshConfig with targetRefs: the mTLS mode of some Services. */
export interface MtlsOverride {
  name: string;
  targets: { service: string; namespace: string }[];
  mode: MtlsMode;
  source?: SourceRef;
}

/** Istio's default too: sidecars accept plaintext and mTLS, and originate mTLS to
 *  every instance whose sidecar has a certificate. */
export const DEFAULT_MTLS_MODE: MtlsMode = 'PERMISSIVE';
export const DEFAULT_TRUST_DOMAIN = 'tessera.local';

/** What every SPIFFE ID of a namespace starts with: `spiffe://{trustDomain}/ns/{namespace}/sa/`.
 *  Namespaces are DNS labels, so none is a prefix of another once `/sa/` follows. */
export const namespaceSpiffePrefix = (trustDomain: string, namespace: string): string => `spiffe://${trustDomain}/ns/${namespace}/sa/`;
/** A workload's SPIFFE ID: `spiffe://{trustDomain}/ns/{namespace}/sa/{serviceAccount}`. */
export const workloadSpiffeId = (trustDomain: string, namespace: string, serviceAccount: string): string =>
  namespaceSpiffePrefix(trustDomain, namespace) + serviceAccount;
/** The identities a Service's instances present: its service accounts, by default its own name. */
export const serviceSpiffeIds = (trustDomain: string, service: { name: string; namespace: string; serviceAccounts?: string[] }): string[] =>
  (service.serviceAccounts ?? [service.name]).map((sa) => workloadSpiffeId(trustDomain, service.namespace, sa));

/** The control plane's ParallelRun comparator as a workload of the mesh: its certificate
 *  names `spiffe://{trustDomain}/ns/tessera-system/sa/tessera-comparator`. */
export const COMPARATOR_WORKLOAD = { namespace: 'tessera-system', serviceAccount: 'tessera-comparator' } as const;
export const comparatorSpiffeId = (trustDomain: string): string => workloadSpiffeId(trustDomain, COMPARATOR_WORKLOAD.namespace, COMPARATOR_WORKLOAD.serviceAccount);

/** Tracing and access logs (a `Telemetry` document). One without targets is mesh-wide;
 *  one with targets overrides it field by field for the sidecars of those services. */
export interface Telemetry {
  name: string;
  namespace: string;
  /** Empty: mesh-wide. */
  targets: { service: string; namespace: string }[];
  accessLog?: {
    disabled?: boolean;
    /** A file path, or /dev/stdout. */
    path?: string;
    /** Extra or overriding JSON fields: name -> Envoy format string. */
    fields?: Record<string, string>;
  };
  tracing?: {
    disabled?: boolean;
    /** OTLP/gRPC collector, `HOST:PORT` (an IP or a DNS name). */
    otlpAddress?: string;
    /** 0..100; Envoy's default is 100. */
    samplingPercent?: number;
    /** Default: the sidecar's service. */
    serviceName?: string;
  };
  source?: SourceRef;
}

/** Progressive delivery (DESIGN.md): traffic for `target` moves from `stable` to
 *  `canary` step by step, judged by what the sidecars report. */
export interface CanarySpec {
  name: string;
  namespace: string;
  target: { service: string; namespace: string };
  stable: { service: string; namespace: string };
  canary: { service: string; namespace: string };
  /** Canary weight (percent) of each step, increasing; empty with `test` and for ParallelRun. */
  steps: number[];
  /** A/B (strategy Canary with `match`) and BlueGreen: while judged, the canary gets
   *  only test traffic (the requests that match, or a mirror of all of them); after
   *  `iterations` passing intervals it gets 100% at once. Absent: weighted steps. */
  test?: CanaryTest;
  intervalMs: number;
  /** Absent means Canary (weighted steps). */
  strategy?: 'Canary' | 'ParallelRun';
  /** ParallelRun: the target's requests are mirrored to the control plane's comparator,
   *  which compares stable and candidate answers; no caller is answered by the candidate. */
  parallelRun?: {
    /** Methods compared (others are counted, never forwarded). */
    methods: string[];
    /** Response headers compared, lower case. */
    headers: string[];
    /** Percent of the target's requests mirrored. */
    percent: number;
  };
  analysis: {
    /** ParallelRun: most candidate answers (percent) that may differ from stable. */
    maxMismatchPercent?: number;
    /** Percent of non-5xx responses the canary must keep over an interval. */
    successRateMin?: number;
    latencyP99MaxMs?: number;
    /** Below this many canary requests in an interval, the step waits. */
    minRequests: number;
    /** Failed analyses (not necessarily in a row) that roll the canary back. */
    failureLimit: number;
    /** Where the numbers come from. Absent: the metrics the sidecars stream to the
     *  control plane. `prometheus`: queried from the user's Prometheus, which scrapes the
     *  sidecars' stats listener (`:15090/stats/prometheus`; strategy Canary and BlueGreen only). */
    provider?: { prometheus: PrometheusProvider };
  };
  source?: SourceRef;
}

/** What a ParallelRun compares and mirrors unless its spec says otherwise: only methods
 *  safe to send three times, the content type, every request. */
export const PARALLEL_RUN_DEFAULTS = { methods: ['GET', 'HEAD', 'OPTIONS'], headers: ['content-type'], percent: 100 } as const;

export interface PrometheusProvider {
  /** Base URL of the Prometheus HTTP API, http(s) only: `http://prometheus:9090`. */
  address: string;
  /** Bound on each query (the HTTP request and Prometheus' own evaluation). */
  timeoutMs: number;
  /** PromQL templates replacing the built-in success rate (percent, 0-100) and p99 (ms)
   *  queries; `{{backend}}`, `{{namespace}}` and `{{interval}}` (the window, `30000ms`) are
   *  filled in for the canary and for stable. Requests and 5xx stay the built-in queries. */
  successRateQuery?: string;
  latencyP99Query?: string;
}

export interface CanaryTest {
  mode: 'A/B' | 'BlueGreen';
  /** Requests matching any one of these go to the canary (each: all its headers hold). */
  match?: RouteMatch[];
  /** BlueGreen: a copy of every request to stable goes to the canary; its answers are dropped. */
  mirror?: boolean;
  /** Passing intervals before promotion. */
  iterations: number;
}

/** Everything the config files declare, validated. */
export interface MeshModel {
  services: MeshService[];
  routes: Route[];
  policies: TrafficPolicy[];
  /** Instances declared by EndpointSlice files. */
  endpoints: Endpoint[];
  /** Optional so models built in code (tests, benches) need not list it; read with `?? []`. */
  authorizationPolicies?: AuthorizationPolicy[];
  meshConfig?: MeshConfig;
  mtlsOverrides?: MtlsOverride[];
  /** Telemetry documents (absent in models built before the kind existed). */
  telemetry?: Telemetry[];
  /** Present only when a config declares a Canary. */
  canaries?: CanarySpec[];
  /** Where the control plane's comparator listens, while a ParallelRun mirrors to it
   *  (set by the Canary overlay): sidecars get a cluster for it. */
  comparator?: { address: string; port: number };
}

export const emptyModel = (): MeshModel => ({ services: [], routes: [], policies: [], endpoints: [], authorizationPolicies: [] });

/** Identifies a mesh service across namespaces. */
export const serviceKey = (name: string, namespace: string): string => `${name}.${namespace}`;

/** A service's mTLS mode: a targeted MeshConfig (the first by name, whatever the file
 *  order), else the mesh-wide one, else the default. */
export function effectiveMtlsMode(model: MeshModel, service: string | undefined, namespace: string): MtlsMode {
  if (service) {
    const key = serviceKey(service, namespace);
    const overrides = [...(model.mtlsOverrides ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const override = overrides.find((o) => o.targets.some((t) => serviceKey(t.service, t.namespace) === key));
    if (override) return override.mode;
  }
  return model.meshConfig?.mtlsMode ?? DEFAULT_MTLS_MODE;
}

/** What the translator knows about the proxy it builds config for. */
export type ProxyContext =
  | {
      kind: 'sidecar';
      /** The service this sidecar fronts; absent for an outbound-only sidecar. */
      service?: string;
      namespace: string;
      /** Outbound HTTP listener (default 127.0.0.1:15001). */
      outbound: { address: string; port: number };
      /** Inbound: listen on `port` (the instance's registered port), forward to the app. */
      inbound?: { address: string; port: number; appPort: number; appAddress: string };
      /** The proxy's own zone (node.locality.zone): instances there are preferred. */
      zone?: string;
      /** Transparent capture (iptables): the outbound listener becomes the outbound
       *  capture listener (original destination, passthrough for non-mesh hosts) and
       *  an inbound capture listener listens on `inboundPort`. */
      capture?: { inboundPort: number };
      /** The agent serves this proxy a workload certificate over SDS (mTLS possible). */
      sds?: boolean;
    }
  | {
      kind: 'proxyless';
      zone?: string;
      /** Its bootstrap names the `tessera` certificate provider (gRFC A29 file_watcher
       *  on the files `tessera certs` keeps renewed): mTLS to STRICT services. */
      certificates?: boolean;
    };
