// Access logs and tracing for a sidecar's HTTP connection managers (and its TCP
// passthrough), from the Telemetry in effect for the sidecar's service, plus the
// cluster its tracer exports spans to. Proxyless gRPC clients get none of it:
// grpc-js-xds reads only rds and http_filters of an HCM, and has no tracer.
import { isIP } from 'node:net';
import { effectiveTelemetry, type EffectiveTelemetry } from '../model/telemetry.ts';
import { EXTENSION } from '../xds/resources/type-urls.ts';
import { socketAddress } from './config-source.ts';
import type { TranslateContext } from './context.ts';
import { duration } from './duration.ts';
import { typedAny, type AccessLog, type Cluster, type FileAccessLog, type HcmTracing, type HttpProtocolOptions, type OpenTelemetryConfig, type StdoutAccessLog } from './envoy-types.ts';
import type { NamedResource } from './index.ts';
import { FILTER, OTLP_COLLECTOR_CLUSTER } from './names.ts';

export type Direction = 'inbound' | 'outbound';

/** What every HTTP access-log line holds (Telemetry `accessLog.fields` add to it or
 *  override it). Literal values (no %) are written as they are. */
export const HTTP_LOG_FIELDS: Record<string, string> = {
  start_time: '%START_TIME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  authority: '%REQ(:AUTHORITY)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  duration_ms: '%DURATION%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  traceparent: '%REQ(TRACEPARENT)%',
  trace_id: '%TRACE_ID%',
};

/** A connection that is not HTTP (capture passthrough) has no request to describe. */
export const TCP_LOG_FIELDS: Record<string, string> = {
  start_time: '%START_TIME%',
  protocol: 'tcp',
  response_flags: '%RESPONSE_FLAGS%',
  duration_ms: '%DURATION%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
};

function telemetryOf(ctx: TranslateContext): EffectiveTelemetry {
  if (ctx.proxy.kind !== 'sidecar') return {};
  return effectiveTelemetry(ctx.model, ctx.proxy.service, ctx.proxy.namespace);
}

/** `/dev/stdout` and `/dev/stderr` go to Envoy's own streams: the file logger would
 *  open() them, which fails (ENXIO, and Envoy rejects the listener) when the stream is
 *  a socket, as it is for an Envoy whose output the agent reads. */
function accessLog(path: string, fields: Record<string, string>): AccessLog {
  // protobufjs spells Struct values in camelCase (see xds/resources/struct.ts).
  const log_format = { json_format: { fields: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, { stringValue: v }])) } };
  if (path === '/dev/stdout') return { name: FILTER.stdoutAccessLog, typed_config: typedAny<StdoutAccessLog>(EXTENSION.stdoutAccessLog, { log_format }) };
  if (path === '/dev/stderr') return { name: FILTER.stderrAccessLog, typed_config: typedAny<StdoutAccessLog>(EXTENSION.stderrAccessLog, { log_format }) };
  return { name: FILTER.fileAccessLog, typed_config: typedAny<FileAccessLog>(EXTENSION.fileAccessLog, { path, log_format }) };
}

/** The fields a sidecar's HCM gets: `access_log` and `tracing`, or nothing. */
export function httpTelemetryFields(ctx: TranslateContext, direction: Direction): { access_log?: AccessLog[]; tracing?: HcmTracing } {
  const telemetry = telemetryOf(ctx);
  const out: { access_log?: AccessLog[]; tracing?: HcmTracing } = {};
  if (telemetry.accessLog) {
    const fields = { ...HTTP_LOG_FIELDS, direction, ...telemetry.accessLog.fields };
    out.access_log = [accessLog(telemetry.accessLog.path, fields)];
  }
  if (telemetry.tracing) out.tracing = tracing(ctx, telemetry.tracing);
  return out;
}

/** The access log of a TCP proxy (the capture listeners' non-HTTP passthrough). */
export function tcpTelemetryFields(ctx: TranslateContext, direction: Direction): { access_log?: AccessLog[] } {
  const telemetry = telemetryOf(ctx);
  if (!telemetry.accessLog) return {};
  return { access_log: [accessLog(telemetry.accessLog.path, { ...TCP_LOG_FIELDS, direction, ...telemetry.accessLog.fields })] };
}

function tracing(ctx: TranslateContext, t: NonNullable<EffectiveTelemetry['tracing']>): HcmTracing {
  const service = ctx.proxy.kind === 'sidecar' ? ctx.proxy.service : undefined;
  const serviceName = t.serviceName ?? service;
  const config: OpenTelemetryConfig = {
    grpc_service: { envoy_grpc: { cluster_name: OTLP_COLLECTOR_CLUSTER }, timeout: duration(1000) },
    ...(serviceName ? { service_name: serviceName } : {}),
  };
  return {
    provider: { name: FILTER.openTelemetryTracer, typed_config: typedAny(EXTENSION.openTelemetryTracer, config) },
    // Envoy samples 100% when unset.
    ...(t.samplingPercent !== undefined ? { random_sampling: { value: t.samplingPercent } } : {}),
  };
}

/** The OTLP collector, over HTTP/2 (gRPC): STATIC for an IP address, STRICT_DNS for a
 *  name. Emitted only for a sidecar whose Telemetry enables tracing. */
export function collectorCluster(ctx: TranslateContext): NamedResource | undefined {
  const t = telemetryOf(ctx).tracing;
  if (!t) return undefined;
  const { host, port } = splitHostPort(t.otlpAddress);
  const name = OTLP_COLLECTOR_CLUSTER;
  const ip = isIP(host) !== 0;
  const resource: Cluster = {
    name,
    type: ip ? 'STATIC' : 'STRICT_DNS',
    ...(ip ? {} : { dns_lookup_family: 'V4_PREFERRED' }),
    connect_timeout: duration(1000),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(host, port) } }] }] },
    typed_extension_protocol_options: {
      [FILTER.upstreamHttpProtocolOptions]: typedAny<HttpProtocolOptions>(EXTENSION.httpProtocolOptions, {
        explicit_http_config: { http2_protocol_options: {} },
      }),
    },
  };
  return { name, resource };
}

/** `HOST:PORT` (checked by the config loader); brackets come off an IPv6 address. */
function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(colon + 1)) };
}
