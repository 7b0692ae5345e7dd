// CDS: one EDS cluster per service port, shaped by the service's TrafficPolicy, and
// the sidecar's STATIC inbound cluster. Each concern is a small configurer that
// returns the fields it owns (Kuma's cluster configurers).
import type { NamedResource } from './index.ts';
import type { MeshService, ServicePort, TrafficPolicy } from '../model/types.ts';
import { EXTENSION } from '../xds/resources/type-urls.ts';
import { adsConfigSource, socketAddress } from './config-source.ts';
import { isHttp2Port, type TranslateContext } from './context.ts';
import { typedAny, type CircuitBreakerThresholds, type Cluster, type HealthCheck, type HttpProtocolOptions, type OutlierDetection } from './envoy-types.ts';
import { duration, wrap } from './duration.ts';
import { FILTER, inboundClusterName, outboundClusterName, PASSTHROUGH_CLUSTER } from './names.ts';
import { upstreamMtls } from './tls.ts';

/** Envoy's own default; TrafficPolicy.connectTimeout overrides it. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

export function outboundClusters(ctx: TranslateContext): NamedResource[] {
  return ctx.services.flatMap((service) =>
    service.ports.map((port) => {
      const resource = outboundCluster(ctx, service, port);
      return { name: resource.name as string, resource };
    }),
  );
}

function outboundCluster(ctx: TranslateContext, service: MeshService, port: ServicePort): Cluster & { name: string } {
  const name = outboundClusterName(service.name, service.namespace, port.port);
  const policy = ctx.policy(service.name, service.namespace);
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: adsConfigSource(), service_name: name },
    connect_timeout: duration(policy?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS),
    ...loadBalancer(policy, ctx.proxyless),
    ...circuitBreakers(policy),
    ...outlierDetection(policy),
    ...healthChecks(policy, port, ctx.proxyless),
    ...upstreamHttp2(port),
    ...upstreamMtls(ctx, service),
  };
}

/** The sidecar's path to its own application: a fixed address, so no EDS. */
export function inboundCluster(ctx: TranslateContext): NamedResource | undefined {
  if (ctx.proxy.kind !== 'sidecar' || !ctx.proxy.inbound) return undefined;
  const { port, appAddress, appPort } = ctx.proxy.inbound;
  const name = inboundClusterName(port);
  const ownPort = inboundServicePort(ctx, port);
  const resource: Cluster = {
    name,
    type: 'STATIC',
    connect_timeout: duration(DEFAULT_CONNECT_TIMEOUT_MS),
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(appAddress, appPort) } }] }],
    },
    ...(ownPort ? upstreamHttp2(ownPort) : {}),
  };
  return { name, resource };
}

/** Under capture: sends a connection (or request) on to its original destination,
 *  for hosts outside the mesh and for inbound traffic to the local app. */
export function passthroughCluster(ctx: TranslateContext): NamedResource | undefined {
  if (ctx.proxy.kind !== 'sidecar' || !ctx.proxy.capture) return undefined;
  const name = PASSTHROUGH_CLUSTER;
  return { name, resource: { name, type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: duration(DEFAULT_CONNECT_TIMEOUT_MS) } };
}

/** The port of the sidecar's own service that the inbound port serves, so a gRPC
 *  application is spoken to in HTTP/2. */
function inboundServicePort(ctx: TranslateContext, instancePort: number): ServicePort | undefined {
  if (ctx.proxy.kind !== 'sidecar' || !ctx.proxy.service) return undefined;
  const own = ctx.service(ctx.proxy.service, ctx.proxy.namespace);
  if (!own) return undefined;
  return own.ports.find((p) => p.targetPort === instancePort) ?? (own.ports.length === 1 ? own.ports[0] : undefined);
}

// ---- configurers ----

/** gRPC and h2c backends need HTTP/2 upstream; Envoy defaults to HTTP/1.1. */
function upstreamHttp2(port: ServicePort): Pick<Cluster, 'typed_extension_protocol_options'> {
  if (!isHttp2Port(port)) return {};
  return {
    typed_extension_protocol_options: {
      [FILTER.upstreamHttpProtocolOptions]: typedAny<HttpProtocolOptions>(EXTENSION.httpProtocolOptions, {
        explicit_http_config: { http2_protocol_options: {} },
      }),
    },
  };
}

const LB_POLICY = {
  RoundRobin: 'ROUND_ROBIN',
  LeastRequest: 'LEAST_REQUEST',
  Random: 'RANDOM',
  RingHash: 'RING_HASH',
} as const;

/** grpc-js-xds NACKs a cluster whose lb_policy it does not implement (it has only
 *  round robin and ring hash), so proxyless clients fall back to round robin. */
function loadBalancer(policy: TrafficPolicy | undefined, proxyless: boolean): Pick<Cluster, 'lb_policy'> {
  const wanted = policy?.loadBalancer?.policy;
  if (!wanted) return {};
  if (proxyless && wanted !== 'RingHash') return { lb_policy: 'ROUND_ROBIN' };
  return { lb_policy: LB_POLICY[wanted] };
}

function circuitBreakers(policy: TrafficPolicy | undefined): Pick<Cluster, 'circuit_breakers'> {
  const pool = policy?.connectionPool;
  if (!pool) return {};
  const threshold: CircuitBreakerThresholds = {};
  if (pool.maxConnections !== undefined) threshold.max_connections = wrap(pool.maxConnections);
  if (pool.maxPendingRequests !== undefined) threshold.max_pending_requests = wrap(pool.maxPendingRequests);
  if (pool.maxRequests !== undefined) threshold.max_requests = wrap(pool.maxRequests);
  if (pool.maxRetries !== undefined) threshold.max_retries = wrap(pool.maxRetries);
  if (Object.keys(threshold).length === 0) return {};
  // priority is left at its default (DEFAULT): the only priority routes use.
  return { circuit_breakers: { thresholds: [threshold] } };
}

function outlierDetection(policy: TrafficPolicy | undefined): Pick<Cluster, 'outlier_detection'> {
  const od = policy?.outlierDetection;
  if (!od) return {};
  const config: OutlierDetection = {};
  if (od.consecutive5xxErrors !== undefined) config.consecutive_5xx = wrap(od.consecutive5xxErrors);
  if (od.intervalMs !== undefined) config.interval = duration(od.intervalMs);
  if (od.baseEjectionTimeMs !== undefined) config.base_ejection_time = duration(od.baseEjectionTimeMs);
  if (od.maxEjectionPercent !== undefined) config.max_ejection_percent = wrap(od.maxEjectionPercent);
  return { outlier_detection: config };
}

/** Active health checks run by the proxy itself; proxyless gRPC has none (it
 *  relies on the registry's checks reaching it through EDS). */
function healthChecks(policy: TrafficPolicy | undefined, port: ServicePort, proxyless: boolean): Pick<Cluster, 'health_checks'> {
  const hc = policy?.healthCheck;
  if (!hc || proxyless) return {};
  return {
    health_checks: [
      {
        timeout: duration(hc.timeoutMs),
        interval: duration(hc.intervalMs),
        healthy_threshold: wrap(hc.healthyThreshold),
        unhealthy_threshold: wrap(hc.unhealthyThreshold),
        ...healthCheckKind(hc, port),
      },
    ],
  };
}

function healthCheckKind(
  hc: NonNullable<TrafficPolicy['healthCheck']>,
  port: ServicePort,
): Pick<HealthCheck, 'http_health_check' | 'grpc_health_check' | 'tcp_health_check'> {
  if (hc.http) {
    // An h2c/gRPC backend would not answer an HTTP/1.1 probe.
    return { http_health_check: { path: hc.http, ...(isHttp2Port(port) ? { codec_client_type: 'HTTP2' } : {}) } };
  }
  // Envoy refuses a gRPC health check on a cluster without HTTP/2, so on an HTTP/1
  // port a gRPC check degrades to a TCP connect check.
  if (hc.grpc && isHttp2Port(port)) return { grpc_health_check: {} };
  return { tcp_health_check: {} };
}
