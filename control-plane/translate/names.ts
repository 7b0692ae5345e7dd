// Every resource name the translator emits, in one place (as Kuma's pkg/xds/names):
// proxies, the admin API and tests refer to resources by these names, so a change
// here is a change of the data plane contract.

/** The EDS cluster (and its ClusterLoadAssignment) for one service port, Istio style:
 *  `outbound|9080||reviews.default`. The port is the service port clients dial. */
export function outboundClusterName(service: string, namespace: string, port: number): string {
  return `outbound|${port}||${service}.${namespace}`;
}

/** The sidecar's outbound HTTP listener, and the RouteConfiguration it loads over RDS. */
export const OUTBOUND_HTTP_LISTENER = 'outbound_http';
export const OUTBOUND_HTTP_ROUTE_CONFIG = 'outbound_http';

/** Transparent capture (iptables): the outbound capture listener on the outbound
 *  port, the inbound capture listener (and its inline route table), and the
 *  ORIGINAL_DST cluster that sends a connection on to where it was going. */
export const OUTBOUND_CAPTURE_LISTENER = 'outbound_capture';
export const INBOUND_CAPTURE_LISTENER = 'inbound_capture';
export const PASSTHROUGH_CLUSTER = 'passthrough';
/** The virtual host in `outbound_http` that lets non-mesh HTTP hosts through. */
export const PASSTHROUGH_VIRTUAL_HOST = 'passthrough';

/** The sidecar's inbound listener on the instance port (its route config is inline). */
export function inboundListenerName(port: number): string {
  return `inbound_${port}`;
}

/** The STATIC cluster that points the inbound listener at the local application. */
export function inboundClusterName(port: number): string {
  return `inbound|${port}`;
}

/** Proxyless gRPC resolves `xds:///X` and `xds:///X:PORT` by LDS name, so the API
 *  listener names are exactly what clients dial. */
export function apiListenerName(service: string, port?: number): string {
  return port === undefined ? service : `${service}:${port}`;
}

/** The RouteConfiguration behind the API listeners of one service port. */
export function proxylessRouteConfigName(service: string, namespace: string, port: number): string {
  return `${service}.${namespace}:${port}`;
}

/** The virtual host of one service port inside `outbound_http`. */
export function virtualHostName(service: string, namespace: string, port: number): string {
  return `${service}.${namespace}:${port}`;
}

/** The Envoy RBAC policy of one AuthorizationPolicy rule (Istio's spelling), which
 *  Envoy's logs and per-rule stats show. */
export function rbacPolicyName(namespace: string, policy: string, ruleIndex: number): string {
  return `ns[${namespace}]-policy[${policy}]-rule[${ruleIndex}]`;
}

/** Stat prefixes of the DENY and ALLOW RBAC filters: `http.<listener>.rbac.deny.denied`,
 *  `http.<listener>.rbac.allow.denied` (Envoy adds the dot). */
export const RBAC_STAT_PREFIX = { DENY: 'deny', ALLOW: 'allow' } as const;
/** The cluster a sidecar's tracer sends spans to (the Telemetry's OTLP collector). */
export const OTLP_COLLECTOR_CLUSTER = 'otlp_collector';

/** Envoy's names for the built-in filters and extensions we configure. */
export const FILTER = {
  httpConnectionManager: 'envoy.filters.network.http_connection_manager',
  router: 'envoy.filters.http.router',
  httpRbac: 'envoy.filters.http.rbac',
  networkRbac: 'envoy.filters.network.rbac',
  previousHostsPredicate: 'envoy.retry_host_predicates.previous_hosts',
  upstreamHttpProtocolOptions: 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  tcpProxy: 'envoy.filters.network.tcp_proxy',
  originalDst: 'envoy.filters.listener.original_dst',
  httpInspector: 'envoy.filters.listener.http_inspector',
  tlsInspector: 'envoy.filters.listener.tls_inspector',
  fileAccessLog: 'envoy.access_loggers.file',
  stdoutAccessLog: 'envoy.access_loggers.stdout',
  stderrAccessLog: 'envoy.access_loggers.stderr',
  openTelemetryTracer: 'envoy.tracers.opentelemetry',
} as const;

/** Type URLs of the listener filters capture uses (loaded in protos/loader.ts). */
export const LISTENER_FILTER_TYPE = {
  originalDst: 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  httpInspector: 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
  tlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
} as const;

/** What http_inspector reports for plain HTTP/1.x and HTTP/2 with prior knowledge. */
export const HTTP_APPLICATION_PROTOCOLS = ['http/1.0', 'http/1.1', 'h2c'];

/** Domain suffix of Kubernetes service DNS names (`X.NS.svc.cluster.local`). */
export const CLUSTER_DOMAIN = 'cluster.local';
/** The STATIC cluster of the control plane's comparator, which a ParallelRun mirrors to. */
export const COMPARATOR_CLUSTER = 'tessera_comparator';
