// LDS: the sidecar's outbound and inbound HTTP listeners, and the API listeners
// through which proxyless gRPC clients resolve `xds:///X` and `xds:///X:PORT`.
import { EXTENSION } from '../xds/resources/type-urls.ts';
import { inboundHttpFilters, inboundNetworkFilters, inboundPathNormalization } from './authorization.ts';
import { adsConfigSource, socketAddress } from './config-source.ts';
import type { TranslateContext } from './context.ts';
import { duration, wrap } from './duration.ts';
import {
  type FilterChain,
  type HttpConnectionManager,
  type HttpFilter,
  type Listener,
  type ListenerFilter,
  type NetworkFilter,
  type RouteConfiguration,
  type TcpProxy,
  typedAny,
} from './envoy-types.ts';
import type { NamedResource } from './index.ts';
import {
  apiListenerName,
  FILTER,
  HTTP_APPLICATION_PROTOCOLS,
  INBOUND_CAPTURE_LISTENER,
  inboundClusterName,
  LISTENER_FILTER_TYPE,
  OUTBOUND_CAPTURE_LISTENER,
  PASSTHROUGH_CLUSTER,
  inboundListenerName,
  OUTBOUND_HTTP_LISTENER,
  OUTBOUND_HTTP_ROUTE_CONFIG,
  proxylessRouteConfigName,
} from './names.ts';
import { httpPorts } from './routes.ts';
import { downstreamTlsSocket, inboundTlsPosture, peerCertificateHeaders, tlsInspector } from './tls.ts';
import { httpTelemetryFields, tcpTelemetryFields, type Direction } from './telemetry.ts';

/** The router must be the last HTTP filter (Envoy and grpc-js-xds both insist). */
function routerFilter(): HttpFilter {
  return { name: FILTER.router, typed_config: typedAny(EXTENSION.router, {}) };
}

function rds(routeConfigName: string): Pick<HttpConnectionManager, 'rds'> {
  return { rds: { config_source: adsConfigSource(), route_config_name: routeConfigName } };
}

/** An HCM's own fields, less the two every HCM gets here. */
type HcmFields = Omit<HttpConnectionManager, 'codec_type' | 'http_filters'>;

function httpConnectionManagerConfig(fields: HcmFields, filtersBeforeRouter: HttpFilter[] = []): HttpConnectionManager {
  return { codec_type: 'AUTO', ...fields, http_filters: [...filtersBeforeRouter, routerFilter()] };
}

function httpConnectionManager(fields: HcmFields, filtersBeforeRouter: HttpFilter[] = []): NetworkFilter {
  return { name: FILTER.httpConnectionManager, typed_config: typedAny(EXTENSION.httpConnectionManager, httpConnectionManagerConfig(fields, filtersBeforeRouter)) };
}

/** A sidecar's HCM: with the access log and tracing of its Telemetry (the one place
 *  they are merged in; proxyless API listeners never get them). */
function sidecarHttpConnectionManager(ctx: TranslateContext, direction: Direction, fields: HcmFields, filtersBeforeRouter: HttpFilter[] = []): NetworkFilter {
  return httpConnectionManager({ ...fields, ...httpTelemetryFields(ctx, direction) }, filtersBeforeRouter);
}

/** The outbound route table, also for proxy-form requests (see outboundListener). */
function outboundHttpManager(ctx: TranslateContext, statPrefix: string): NetworkFilter {
  return sidecarHttpConnectionManager(ctx, 'outbound', {
    stat_prefix: statPrefix,
    ...rds(OUTBOUND_HTTP_ROUTE_CONFIG),
    http_protocol_options: { allow_absolute_url: wrap(true) },
  });
}

/** Applications send plain HTTP (or h2c) to the outbound port with `Host: X`, or in
 *  proxy form (`GET http://X/path`, what HTTP_PROXY makes clients do), which Envoy
 *  accepts when allow_absolute_url is set; the URL's host then becomes :authority. */
export function outboundListener(ctx: TranslateContext): NamedResource | undefined {
  if (ctx.proxy.kind !== 'sidecar') return undefined;
  if (ctx.proxy.capture) return outboundCaptureListener(ctx);
  const name = OUTBOUND_HTTP_LISTENER;
  const hcm = outboundHttpManager(ctx, name);
  const resource: Listener = {
    name,
    address: socketAddress(ctx.proxy.outbound.address, ctx.proxy.outbound.port),
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ filters: [hcm] }],
  };
  return { name, resource };
}

/** Everything arriving on the instance port goes to the local application. The
 *  route table is inline: it never changes apart from the listener. The route
 *  timeout is off, so the caller's sidecar alone decides how long a call may take.
 *  How connections are taken (plaintext, mTLS or both) is the service's mTLS mode. */
export function inboundListener(ctx: TranslateContext): NamedResource | undefined {
  if (ctx.proxy.kind !== 'sidecar' || !ctx.proxy.inbound) return undefined;
  const posture = inboundTlsPosture(ctx);
  if (posture === 'closed') return undefined;
  const { address, port } = ctx.proxy.inbound;
  const name = inboundListenerName(port);
  const routeConfig = inboundRouteConfig(name, inboundClusterName(port));
  const plaintext: FilterChain = { filters: [inboundHttpManager(ctx, name, routeConfig, 'plaintext')] };
  const mtls: FilterChain = { filters: [inboundHttpManager(ctx, name, routeConfig, 'mtls')], transport_socket: downstreamTlsSocket() };
  const tlsChain: FilterChain = { name: 'mtls', filter_chain_match: { transport_protocol: 'tls' }, ...mtls };
  const plaintextChain: FilterChain = { name: 'plaintext', filter_chain_match: { transport_protocol: 'raw_buffer' }, ...plaintext };
  const chains: Record<typeof posture, Pick<Listener, 'listener_filters' | 'filter_chains'>> = {
    plaintext: { filter_chains: [plaintext] },
    mtls: { listener_filters: [tlsInspector()], filter_chains: [tlsChain] },
    both: { listener_filters: [tlsInspector()], filter_chains: [tlsChain, plaintextChain] },
  };
  const resource: Listener = {
    name,
    address: socketAddress(address, port),
    traffic_direction: 'INBOUND',
    ...chains[posture],
  };
  return { name, resource };
}

/** Every inbound HTTP connection manager: AuthorizationPolicy's RBAC filters (and the
 *  path normalization their path rules rely on); behind mTLS, the caller's identity
 *  for the app (XFCC). */
function inboundHttpManager(ctx: TranslateContext, name: string, routeConfig: RouteConfiguration, transport: 'mtls' | 'plaintext'): NetworkFilter {
  return sidecarHttpConnectionManager(
    ctx,
    'inbound',
    { stat_prefix: name, route_config: routeConfig, ...inboundPathNormalization(ctx), ...(transport === 'mtls' ? peerCertificateHeaders() : {}) },
    inboundHttpFilters(ctx),
  );
}

function inboundRouteConfig(name: string, cluster: string): RouteConfiguration {
  return {
    name,
    virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: duration(0) } }] }],
  };
}

// ---- transparent capture ----

/** original_dst restores where a redirected connection was going (SO_ORIGINAL_DST);
 *  http_inspector tells HTTP from anything else. A connection whose first bytes
 *  never come (server-first protocols) goes on undetected, as plain TCP. */
function captureListenerFilters(): Pick<Listener, 'continue_on_listener_filters_timeout'> & { listener_filters: ListenerFilter[] } {
  return {
    listener_filters: [
      { name: FILTER.originalDst, typed_config: typedAny(LISTENER_FILTER_TYPE.originalDst, {}) },
      { name: FILTER.httpInspector, typed_config: typedAny(LISTENER_FILTER_TYPE.httpInspector, {}) },
    ],
    continue_on_listener_filters_timeout: true,
  };
}

/** Non-HTTP connections go on, untouched, to their original destination. */
function passthroughChain(ctx: TranslateContext, direction: Direction, statPrefix: string, filtersBeforeProxy: NetworkFilter[] = []): FilterChain {
  const tcpProxy = typedAny<TcpProxy>(EXTENSION.tcpProxy, { stat_prefix: statPrefix, cluster: PASSTHROUGH_CLUSTER, ...tcpTelemetryFields(ctx, direction) });
  return { name: 'passthrough', filters: [...filtersBeforeProxy, { name: FILTER.tcpProxy, typed_config: tcpProxy }] };
}

/** What iptables redirects the app's outbound TCP to. HTTP is routed by Host with
 *  the same route table as the explicit outbound listener (whose passthrough
 *  virtual host lets hosts outside the mesh through); other TCP passes through. */
export function outboundCaptureListener(ctx: TranslateContext): NamedResource | undefined {
  if (ctx.proxy.kind !== 'sidecar' || !ctx.proxy.capture) return undefined;
  const name = OUTBOUND_CAPTURE_LISTENER;
  const hcm = outboundHttpManager(ctx, name);
  const resource: Listener = {
    name,
    address: socketAddress(ctx.proxy.outbound.address, ctx.proxy.outbound.port),
    traffic_direction: 'OUTBOUND',
    ...captureListenerFilters(),
    filter_chains: [{ name: 'http', filter_chain_match: { application_protocols: HTTP_APPLICATION_PROTOCOLS }, filters: [hcm] }],
    default_filter_chain: passthroughChain(ctx, 'outbound', `${name}_tcp`),
  };
  return { name, resource };
}

/** What iptables redirects inbound TCP to: forwarded to the app on the port the
 *  caller dialled (the original destination). Envoy's own connection to the app
 *  is exempt from capture by its uid/gid. Under STRICT only mTLS gets in: no
 *  plaintext HTTP chain and no passthrough for other TCP. */
export function inboundCaptureListener(ctx: TranslateContext): NamedResource | undefined {
  if (ctx.proxy.kind !== 'sidecar' || !ctx.proxy.capture) return undefined;
  const posture = inboundTlsPosture(ctx);
  if (posture === 'closed') return undefined;
  const name = INBOUND_CAPTURE_LISTENER;
  const routeConfig = inboundRouteConfig(name, PASSTHROUGH_CLUSTER);
  const chains: FilterChain[] = [];
  if (posture === 'mtls' || posture === 'both') {
    chains.push({
      name: 'mtls',
      filter_chain_match: { transport_protocol: 'tls' },
      filters: [inboundHttpManager(ctx, name, routeConfig, 'mtls')],
      transport_socket: downstreamTlsSocket(),
    });
  }
  if (posture !== 'mtls') {
    chains.push({
      name: 'http',
      filter_chain_match: { ...(posture === 'both' ? { transport_protocol: 'raw_buffer' } : {}), application_protocols: HTTP_APPLICATION_PROTOCOLS },
      filters: [inboundHttpManager(ctx, name, routeConfig, 'plaintext')],
    });
  }
  const filters = captureListenerFilters();
  if (posture !== 'plaintext') filters.listener_filters.splice(1, 0, tlsInspector());
  const resource: Listener = {
    name,
    address: socketAddress('0.0.0.0', ctx.proxy.capture.inboundPort),
    traffic_direction: 'INBOUND',
    ...filters,
    filter_chains: chains,
    ...(posture === 'mtls' ? {} : { default_filter_chain: passthroughChain(ctx, 'inbound', `${name}_tcp`, inboundNetworkFilters(ctx, `${name}_tcp`)) }),
  };
  return { name, resource };
}

/** `X` (the service's first HTTP port) and `X:PORT` for each HTTP port. The
 *  client's namespace is unknown, so a name several namespaces use goes to the
 *  service in `default`, else to the first namespace in sort order. */
export function apiListeners(ctx: TranslateContext): NamedResource[] {
  const defaultFirst = (ns: string) => (ns === 'default' ? 0 : 1);
  const ports = httpPorts(ctx).sort((a, b) => defaultFirst(a.service.namespace) - defaultFirst(b.service.namespace));
  const listeners = new Map<string, NamedResource>();
  for (const { service, port } of ports) {
    const routeConfig = proxylessRouteConfigName(service.name, service.namespace, port.port);
    for (const name of [apiListenerName(service.name), apiListenerName(service.name, port.port)]) {
      // The first claim wins: the bare name goes to the first HTTP port.
      if (!listeners.has(name)) listeners.set(name, { name, resource: apiListener(name, routeConfig) });
    }
  }
  return [...listeners.values()];
}

function apiListener(name: string, routeConfigName: string): Listener {
  const hcm = typedAny(EXTENSION.httpConnectionManager, httpConnectionManagerConfig(rds(routeConfigName)));
  // grpc-js-xds reads only rds and http_filters; codec_type is harmless to it.
  return { name, api_listener: { api_listener: hcm } };
}
