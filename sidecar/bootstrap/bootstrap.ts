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
                  endpoint: { address: { socket_address: { address: x.host, port_value: x.port } } },
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
      ],
    },
    admin: {
      address: { socket_address: { address: o.adminAddress ?? '127.0.0.1', port_value: o.adminPort } },
    },
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
