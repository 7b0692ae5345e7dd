// Protocol facts in one place: type URLs and the order ADS pushes them in.
export const TYPE_PREFIX = 'type.googleapis.com/';

export const TypeUrl = {
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

export type ResourceTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/** Make-before-break: clusters before their endpoints, listeners before their routes,
 *  secrets first because clusters and listeners reference them. */
export const ADS_ORDER: readonly ResourceTypeUrl[] = [
  TypeUrl.Secret,
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
];

/** Short names for logs, metrics and the admin API. */
export const SHORT_NAME: Record<ResourceTypeUrl, string> = {
  [TypeUrl.Cluster]: 'CDS',
  [TypeUrl.ClusterLoadAssignment]: 'EDS',
  [TypeUrl.Listener]: 'LDS',
  [TypeUrl.RouteConfiguration]: 'RDS',
  [TypeUrl.Secret]: 'SDS',
};

/** For LDS and CDS an empty first request means "everything" (legacy wildcard);
 *  for RDS, EDS and SDS an empty name list means "nothing". */
export function isWildcardCapable(typeUrl: string): boolean {
  return typeUrl === TypeUrl.Listener || typeUrl === TypeUrl.Cluster;
}

export function isResourceTypeUrl(typeUrl: string): typeUrl is ResourceTypeUrl {
  return (ADS_ORDER as readonly string[]).includes(typeUrl);
}

const CANONICAL = new Map<string, ResourceTypeUrl>(ADS_ORDER.map((t) => [t, t]));

/** The type URL as our own constant (undefined when it is not a resource type): a
 *  request's type_url is a fresh string, and every map and object lookup with it
 *  would hash and compare it again. */
export function resourceTypeUrl(typeUrl: string): ResourceTypeUrl | undefined {
  return CANONICAL.get(typeUrl);
}

export function messageName(typeUrl: string): string {
  return typeUrl.startsWith(TYPE_PREFIX) ? typeUrl.slice(TYPE_PREFIX.length) : typeUrl;
}

export const EXTENSION = {
  httpConnectionManager:
    'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  httpRbac: 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
  networkRbac: 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
  httpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  downstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  stdoutAccessLog: 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
  stderrAccessLog: 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog',
  fileAccessLog: 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
  openTelemetryTracer: 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig',
  previousHostsPredicate: 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate',
} as const;
