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

/** Envoy's names for the built-in filters and extensions we configure. */
export const FILTER = {
  httpConnectionManager: 'envoy.filters.network.http_connection_manager',
  router: 'envoy.filters.http.router',
  previousHostsPredicate: 'envoy.retry_host_predicates.previous_hosts',
  upstreamHttpProtocolOptions: 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
} as const;

/** Domain suffix of Kubernetes service DNS names (`X.NS.svc.cluster.local`). */
export const CLUSTER_DOMAIN = 'cluster.local';
