// An Envoy bootstrap that connects to the control plane over ADS. Written in
// proto3 JSON (durations as "1s"), the form Envoy reads from a file.

export interface BootstrapOptions {
  service?: string;
  namespace?: string;
  nodeId: string;
  /** Control-plane xDS addresses; Envoy fails over between them. */
  xds: { host: string; port: number }[];
  mode: 'sotw' | 'delta';
  adminPort: number;
  adminAddress?: string;
  /** The zone this proxy runs in: instances in the same zone are preferred. */
  zone?: string;
  outbound: { address: string; port: number };
  inbound?: { address: string; port: number; appPort: number; appAddress: string };
  /** Transparent capture (iptables): the control plane then serves the outbound
   *  capture listener (original destination) and the inbound one on `inboundPort`. */
  capture?: { inboundPort: number };
  /** The agent's SDS server (a Unix socket): the proxy then has a workload certificate,
   *  and the control plane serves it mTLS listeners and clusters that ask SDS for it. */
  sds?: { socketPath: string };
  /** Verify the control plane's xDS port over TLS: it must present this SPIFFE ID from
   *  the mesh CA (the bundle comes from the agent's SDS, so root rotation applies). */
  xdsTls?: { controlPlaneId: string };
  /** How often Envoy streams its stats to the control plane (default 5 s, Envoy's own). */
  statsFlushIntervalMs?: number;
  /** The read-only Prometheus stats listener (Istio's 15090): only `GET /stats/prometheus`
   *  reaches Envoy's admin, everything else is answered 404/405 by the listener itself.
   *  Default 0.0.0.0:15090; `false` leaves it out. */
  statsListener?: { address?: string; port: number } | false;
}

export const XDS_CLUSTER = 'tessera_xds';
/** The name the control plane's SdsSecretConfigs point at (translate/tls.ts). */
export const SDS_CLUSTER = 'tessera_sds';

const HTTP2_ONLY = (keepalive?: Record<string, unknown>) => ({
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: keepalive ? { connection_keepalive: keepalive } : {} },
  },
});

function sdsSecret(name: string) {
  return {
    name,
    sds_config: {
      api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: SDS_CLUSTER } }], set_node_on_first_message_only: true },
      resource_api_version: 'V3',
    },
  };
}

function xdsTlsSocket(controlPlaneId: string) {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: {
        alpn_protocols: ['h2'],
        tls_certificate_sds_secret_configs: [sdsSecret('default')],
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: controlPlaneId } }] },
          validation_context_sds_secret_config: sdsSecret('ROOTCA'),
        },
      },
    },
  };
}

export const DEFAULT_STATS_FLUSH_INTERVAL_MS = 5000;

const socketAddress = (address: string, port: number) => ({ socket_address: { address, port_value: port } });

/** Istio's port for the same thing (prometheus.io/port in its pods). */
export const DEFAULT_STATS_PORT = 15090;
export const STATS_PATH = '/stats/prometheus';
export const STATS_LISTENER = 'tessera_prometheus_stats';
/** The Envoy admin address, as a cluster the stats listener routes its one path to. */
export const ADMIN_CLUSTER = 'tessera_envoy_admin';

/** A listener that exposes Envoy's Prometheus stats and nothing else of the admin
 *  interface (which is writable: /quitquitquit, /drain_listeners, /runtime_modify).
 *  A `path` route matches the path with the query string removed, so
 *  `/stats/prometheus?usedonly` passes; every other path is 404, other methods 405. */
function statsListener(address: string, port: number): Record<string, unknown> {
  return {
    name: STATS_LISTENER,
    address: socketAddress(address, port),
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: STATS_LISTENER,
              route_config: {
                name: STATS_LISTENER,
                virtual_hosts: [
                  {
                    name: STATS_LISTENER,
                    domains: ['*'],
                    routes: [
                      {
                        match: { path: STATS_PATH, headers: [{ name: ':method', string_match: { exact: 'GET' } }] },
                        route: { cluster: ADMIN_CLUSTER, timeout: '5s' },
                      },
                      {
                        match: { path: STATS_PATH },
                        direct_response: { status: 405 },
                        response_headers_to_add: [{ header: { key: 'allow', value: 'GET' } }],
                      },
                      { match: { prefix: '/' }, direct_response: { status: 404 } },
                    ],
                  },
                ],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

function adminCluster(address: string, port: number): Record<string, unknown> {
  return {
    name: ADMIN_CLUSTER,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: ADMIN_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(address, port) } }] }] },
  };
}

/** Stats Envoy creates: everything outside `cluster.`, the clusters Tessera does not
 *  judge (inbound, xDS, passthrough) whole, and of each outbound cluster only what
 *  operators and the agent read (request classes and time, connections, membership,
 *  updates). The metrics service sink sends every stat Envoy has, so this is what
 *  keeps its payload small; RE2 has no lookahead, hence the "not cluster." spelling. */
export const STATS_INCLUSION = [
  { safe_regex: { regex: '([^c]|c[^l]|cl[^u]|clu[^s]|clus[^t]|clust[^e]|cluste[^r]|cluster[^.]).*|c|cl|clu|clus|clust|cluste|cluster' } },
  { safe_regex: { regex: 'cluster\\.(inbound\\||tessera_xds\\.|passthrough\\.).*' } },
  {
    safe_regex: {
      regex:
        'cluster\\.outbound\\|[^.]+\\.[^.]+\\.(upstream_rq_([1-5]xx|total|time|active|pending_active|pending_overflow|timeout|retry|retry_success)|' +
        'upstream_cx_(total|active|connect_fail|connect_timeout|none_healthy)|update_(attempt|success|rejected|failure|empty|no_rebuild)|' +
        'membership_(healthy|degraded|excluded|total|change)|lb_healthy_panic|outlier_detection\\.ejections_active|version)',
    },
  },
];

/** Envoy's metrics service sink, streaming to the control plane over the xDS cluster:
 *  counters as deltas per flush, histograms as per-interval buckets only (no summary). */
function statsSinks(): unknown[] {
  return [
    {
      name: 'envoy.stat_sinks.metrics_service',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig',
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: XDS_CLUSTER } },
        report_counters_as_deltas: true,
        emit_tags_as_labels: false,
        histogram_emit_mode: 'HISTOGRAM',
      },
    },
  ];
}

const seconds = (ms: number) => `${ms / 1000}s`;

export function envoyBootstrap(o: BootstrapOptions): Record<string, unknown> {
  if (o.xdsTls && !o.sds) throw new Error('xDS over TLS needs the agent\'s SDS (a workload certificate) for the trust bundle');
  const tessera: Record<string, unknown> = {
    mode: 'sidecar',
    namespace: o.namespace ?? 'default',
    outbound: o.outbound,
  };
  if (o.service) tessera.service = o.service;
  if (o.inbound) {
    tessera.inbound = {
      address: o.inbound.address,
      port: o.inbound.port,
      app_port: o.inbound.appPort,
      app_address: o.inbound.appAddress,
    };
  }
  if (o.capture) {
    tessera.capture = true;
    tessera.inbound_capture_port = o.capture.inboundPort;
  }
  if (o.sds) tessera.sds = true;
  const adminAddress = o.adminAddress ?? '127.0.0.1';
  const stats = o.statsListener === false ? undefined : { address: o.statsListener?.address ?? '0.0.0.0', port: o.statsListener?.port ?? DEFAULT_STATS_PORT };
  if (stats && o.adminPort === 0) throw new Error('the stats listener forwards to the Envoy admin port, which must be fixed (not 0); or turn the stats listener off');
  const ads = { ads: {}, resource_api_version: 'V3' };
  return {
    node: { id: o.nodeId, cluster: o.service ?? 'outbound-only', metadata: { tessera }, ...(o.zone ? { locality: { zone: o.zone } } : {}) },
    dynamic_resources: {
      ads_config: {
        api_type: o.mode === 'delta' ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
        set_node_on_first_message_only: true,
      },
      cds_config: ads,
      lds_config: ads,
    },
    static_resources: {
      ...(stats ? { listeners: [statsListener(stats.address, stats.port)] } : {}),
      clusters: [
        {
          name: XDS_CLUSTER,
          type: 'STRICT_DNS',
          connect_timeout: '1s',
          // Find a dead control plane quickly and reconnect to another.
          typed_extension_protocol_options: HTTP2_ONLY({ interval: '5s', timeout: '3s' }),
          ...(o.xdsTls ? { transport_socket: xdsTlsSocket(o.xdsTls.controlPlaneId) } : {}),
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [
              {
                lb_endpoints: o.xds.map((x) => ({
                  endpoint: { address: socketAddress(x.host, x.port) },
                })),
              },
            ],
          },
        },
        ...(o.sds
          ? [
              {
                name: SDS_CLUSTER,
                type: 'STATIC',
                connect_timeout: '1s',
                typed_extension_protocol_options: HTTP2_ONLY(),
                load_assignment: { cluster_name: SDS_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: o.sds.socketPath } } } }] }] },
              },
            ]
          : []),
        // A wildcard admin address is reached on loopback.
        ...(stats ? [adminCluster(adminAddress === '0.0.0.0' || adminAddress === '::' ? '127.0.0.1' : adminAddress, o.adminPort)] : []),
      ],
    },
    admin: {
      address: socketAddress(adminAddress, o.adminPort),
    },
    stats_sinks: statsSinks(),
    stats_flush_interval: seconds(o.statsFlushIntervalMs ?? DEFAULT_STATS_FLUSH_INTERVAL_MS),
    stats_config: { stats_matcher: { inclusion_list: { patterns: STATS_INCLUSION } } },
  };
}

/** `host:port[,host:port…]` */
export function parseXdsAddresses(value: string): { host: string; port: number }[] {
  return value.split(',').map((part) => {
    const m = /^(.+):(\d+)$/.exec(part.trim());
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new Error(`--xds expects HOST:PORT[,HOST:PORT…], got ${JSON.stringify(part)}`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
}

/** `--stats-port`: a port, or `0`/`none` for no stats listener; default 15090. */
export function parseStatsPort(raw: string | undefined, what: string, errors: string[]): number | undefined {
  if (raw === undefined) return DEFAULT_STATS_PORT;
  if (raw === '0' || raw === 'none') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    errors.push(`${what} must be a port number, or 0 or none to turn the stats listener off, got ${JSON.stringify(raw)}`);
    return undefined;
  }
  return n;
}

/** A bootstrap for proxyless gRPC clients (GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG). */
/** The certificate provider name the control plane's proxyless clusters refer to. */
export const GRPC_CERTIFICATE_PROVIDER = 'tessera';

export function grpcBootstrap(o: {
  nodeId: string;
  xds: { host: string; port: number }[];
  zone?: string;
  /** A directory `tessera certs` keeps cert.pem, key.pem and ca.pem renewed in (gRFC A29). */
  certDir?: string;
}): Record<string, unknown> {
  const certificates = o.certDir
    ? {
        certificate_providers: {
          [GRPC_CERTIFICATE_PROVIDER]: {
            plugin_name: 'file_watcher',
            config: {
              certificate_file: `${o.certDir}/cert.pem`,
              private_key_file: `${o.certDir}/key.pem`,
              ca_certificate_file: `${o.certDir}/ca.pem`,
              refresh_interval: '5s',
            },
          },
        },
      }
    : {};
  return {
    ...certificates,
    xds_servers: o.xds.map((x) => ({
      server_uri: `${x.host}:${x.port}`,
      channel_creds: [{ type: 'insecure' }],
      server_features: ['xds_v3'],
    })),
    node: {
      id: o.nodeId,
      // grpc-js-xds wants a locality present, even an empty one.
      locality: o.zone ? { zone: o.zone } : {},
      metadata: { tessera: { mode: 'proxyless', ...(o.certDir ? { certificates: true } : {}) } },
    },
  };
}
