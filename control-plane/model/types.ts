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

export interface MeshConfig {
  trustDomain: string;
  mtlsMode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  certificateLifetimeMs: number;
}

/** Progressive delivery (DESIGN.md): traffic for `target` moves from `stable` to
 *  `canary` step by step, judged by what the sidecars report. */
export interface CanarySpec {
  name: string;
  namespace: string;
  target: { service: string; namespace: string };
  stable: { service: string; namespace: string };
  canary: { service: string; namespace: string };
  /** Canary weight (percent) of each step, increasing. */
  steps: number[];
  intervalMs: number;
  analysis: {
    /** Percent of non-5xx responses the canary must keep over an interval. */
    successRateMin?: number;
    latencyP99MaxMs?: number;
    /** Below this many canary requests in an interval, the step waits. */
    minRequests: number;
    /** Failed analyses (not necessarily in a row) that roll the canary back. */
    failureLimit: number;
  };
  source?: SourceRef;
}

/** Everything the config files declare, validated. */
export interface MeshModel {
  services: MeshService[];
  routes: Route[];
  policies: TrafficPolicy[];
  /** Instances declared by EndpointSlice files. */
  endpoints: Endpoint[];
  meshConfig?: MeshConfig;
  /** Present only when a config declares a Canary. */
  canaries?: CanarySpec[];
}

export const emptyModel = (): MeshModel => ({ services: [], routes: [], policies: [], endpoints: [] });

/** Identifies a mesh service across namespaces. */
export const serviceKey = (name: string, namespace: string): string => `${name}.${namespace}`;

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
    }
  | { kind: 'proxyless'; zone?: string };
