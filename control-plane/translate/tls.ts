// mTLS between sidecars (DESIGN.md "Identity and mTLS"). Certificates never pass
// through the control plane: listeners and clusters name SDS secrets that the proxy's
// own agent serves over a local socket (sidecar/agent/sds.ts), so what is emitted here
// is the same for every proxy and byte-stable across pushes (XDS-NOTES: Envoy keys an
// SDS subscription by the bytes of its config source).
//
// Modes, per the server's Service (MeshConfig, overridden per Service by targetRefs):
//   STRICT      the inbound port takes only mTLS from a certificate of the mesh;
//   PERMISSIVE  it takes both (tls_inspector tells them apart);
//   DISABLE     plaintext only.
// Callers originate mTLS to an instance whose sidecar has a certificate (the EDS
// metadata below) unless its Service is DISABLE, and check that the peer is one of the
// Service's identities.
import { DEFAULT_TRUST_DOMAIN, effectiveMtlsMode, serviceSpiffeIds, type Endpoint, type MeshService, type MtlsMode } from '../model/types.ts';
import { EXTENSION } from '../xds/resources/type-urls.ts';
import { jsonToStruct } from '../xds/resources/struct.ts';
import type { TranslateContext } from './context.ts';
import { wrap } from './duration.ts';
import {
  typedAny,
  type CommonTlsContext,
  type DownstreamTlsContext,
  type HttpConnectionManager,
  type LbEndpoint,
  type ListenerFilter,
  type SdsSecretConfig,
  type TransportSocket,
  type TransportSocketMatch,
  type UpstreamTlsContext,
} from './envoy-types.ts';
import { FILTER, LISTENER_FILTER_TYPE } from './names.ts';

/** The agent's SDS cluster in the sidecar bootstrap (sidecar/bootstrap/bootstrap.ts). */
export const SDS_CLUSTER = 'tessera_sds';
export const SDS_SECRET = { certificate: 'default', trustBundle: 'ROOTCA' } as const;
/** The instance label the agent sets when its sidecar has a certificate. */
export const TLS_MODE_LABEL = 'tessera.dev/tls-mode';
const TRANSPORT_SOCKET_MATCH = 'envoy.transport_socket_match';
const TLS_SOCKET = 'envoy.transport_sockets.tls';

const SDS_CONFIG: SdsSecretConfig['sds_config'] = {
  api_config_source: {
    api_type: 'GRPC',
    transport_api_version: 'V3',
    grpc_services: [{ envoy_grpc: { cluster_name: SDS_CLUSTER } }],
    set_node_on_first_message_only: true,
  },
  resource_api_version: 'V3',
};

function sdsSecret(name: string): SdsSecretConfig {
  return { name, sds_config: SDS_CONFIG };
}

export function trustDomain(ctx: TranslateContext): string {
  return ctx.model.meshConfig?.trustDomain ?? DEFAULT_TRUST_DOMAIN;
}

export function mtlsMode(ctx: TranslateContext, service: string | undefined, namespace: string): MtlsMode {
  return effectiveMtlsMode(ctx.model, service, namespace);
}

/** The SPIFFE IDs a service's workloads present. */
export function serviceIdentities(ctx: TranslateContext, service: MeshService): string[] {
  return serviceSpiffeIds(trustDomain(ctx), service);
}

function commonTlsContext(extra: CommonTlsContext = {}): CommonTlsContext {
  return {
    tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
    tls_certificate_sds_secret_configs: [sdsSecret(SDS_SECRET.certificate)],
    ...extra,
  };
}

/** The inbound side: a client certificate of the mesh is required; who may call is
 *  AuthorizationPolicy's business (RBAC on the peer's URI SAN). */
export function downstreamTlsSocket(): TransportSocket {
  return {
    name: TLS_SOCKET,
    typed_config: typedAny<DownstreamTlsContext>(EXTENSION.downstreamTls, {
      require_client_certificate: wrap(true),
      common_tls_context: commonTlsContext({ validation_context_sds_secret_config: sdsSecret(SDS_SECRET.trustBundle) }),
    }),
  };
}

/** The outbound side: our certificate, and the peer must be one of the service's identities. */
export function upstreamTlsSocket(identities: string[]): TransportSocket {
  return {
    name: TLS_SOCKET,
    typed_config: typedAny<UpstreamTlsContext>(EXTENSION.upstreamTls, {
      common_tls_context: commonTlsContext({
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: identities.map((id) => ({ san_type: 'URI', matcher: { exact: id } })) },
          validation_context_sds_secret_config: sdsSecret(SDS_SECRET.trustBundle),
        },
      }),
    }),
  };
}

/** The certificate provider instance a proxyless client's bootstrap names (sidecar/bootstrap). */
export const GRPC_CERTIFICATE_PROVIDER = 'tessera';

/** Cluster fields: mTLS to instances marked as having a sidecar certificate, plaintext
 *  to the rest (auto mTLS). Only for a proxy that has a certificate itself. */
export function upstreamMtls(ctx: TranslateContext, service: MeshService): { transport_socket_matches?: TransportSocketMatch[]; transport_socket?: TransportSocket } {
  if (ctx.proxy.kind === 'proxyless') return proxylessUpstreamMtls(ctx, service);
  if (!ctx.proxy.sds) return {};
  if (mtlsMode(ctx, service.name, service.namespace) === 'DISABLE') return {};
  return {
    transport_socket_matches: [{ name: 'mtls', match: struct({ [MTLS_MATCH_KEY]: MTLS_MATCH_VALUE }), transport_socket: upstreamTlsSocket(serviceIdentities(ctx, service)) }],
  };
}

/** protobufjs spells the well-known Struct in camelCase (`stringValue`), unlike the
 *  generated types' snake_case: the encoder takes the former. */
const struct = (json: Record<string, unknown>) => jsonToStruct(json) as unknown as NonNullable<TransportSocketMatch['match']>;

const MTLS_MATCH_KEY = 'tlsMode';
const MTLS_MATCH_VALUE = 'mutual';

/** EDS metadata that selects the mtls transport socket match for an instance. */
export function endpointTlsMetadata(instance: Endpoint): Pick<LbEndpoint, 'metadata'> {
  if (instance.labels[TLS_MODE_LABEL] !== MTLS_MATCH_VALUE) return {};
  return { metadata: { filter_metadata: { [TRANSPORT_SOCKET_MATCH]: struct({ [MTLS_MATCH_KEY]: MTLS_MATCH_VALUE }) } } };
}

/** tls_inspector must run for `transport_protocol` to say `tls`. */
export function tlsInspector(): ListenerFilter {
  return { name: FILTER.tlsInspector, typed_config: typedAny(LISTENER_FILTER_TYPE.tlsInspector, {}) };
}

/** How an inbound listener of a sidecar takes connections:
 *  - `plaintext`: as before mTLS (a proxy without a certificate);
 *  - `mtls`: TLS with a mesh client certificate only (STRICT);
 *  - `both`: a TLS chain and a plaintext chain (PERMISSIVE, and DISABLE: callers are
 *    told to send plaintext, and one that has not heard yet still gets in);
 *  - `closed`: STRICT without a certificate to serve with: no inbound listener, rather
 *    than one that takes plaintext the user asked to refuse.
 *  With a certificate the listener keeps one shape (tls_inspector, chains by transport
 *  protocol) in every mode, so a mode switch changes only filter chains, which Envoy
 *  updates in place without draining the connections of the chains that stay. */
export function inboundTlsPosture(ctx: TranslateContext): 'plaintext' | 'mtls' | 'both' | 'closed' {
  if (ctx.proxy.kind !== 'sidecar') return 'plaintext';
  const mode = mtlsMode(ctx, ctx.proxy.service, ctx.proxy.namespace);
  if (!ctx.proxy.sds) return mode === 'STRICT' ? 'closed' : 'plaintext';
  return mode === 'STRICT' ? 'mtls' : 'both';
}

/** HCM fields for a chain that terminated mTLS: the app learns who called (XFCC). */
export function peerCertificateHeaders(): Pick<HttpConnectionManager, 'forward_client_cert_details' | 'set_current_client_cert_details'> {
  return { forward_client_cert_details: 'SANITIZE_SET', set_current_client_cert_details: { uri: true } };
}

/** gRPC has no transport_socket_matches, no SDS and no tls_params (gRFC A29; it NACKs
 *  them): a proxyless client with certificates speaks mTLS to STRICT services, whose
 *  instances all have sidecars (analyze warns otherwise), reading its files through
 *  the bootstrap's certificate provider. It checks only the deprecated
 *  match_subject_alt_names, so both SAN fields are set. */
function proxylessUpstreamMtls(ctx: TranslateContext, service: MeshService): { transport_socket?: TransportSocket } {
  if (ctx.proxy.kind !== 'proxyless' || !ctx.proxy.certificates) return {};
  if (mtlsMode(ctx, service.name, service.namespace) !== 'STRICT') return {};
  const identities = serviceIdentities(ctx, service);
  return {
    transport_socket: {
      name: TLS_SOCKET,
      typed_config: typedAny<UpstreamTlsContext>(EXTENSION.upstreamTls, {
        common_tls_context: {
          tls_certificate_provider_instance: { instance_name: GRPC_CERTIFICATE_PROVIDER },
          validation_context: {
            ca_certificate_provider_instance: { instance_name: GRPC_CERTIFICATE_PROVIDER },
            match_subject_alt_names: identities.map((id) => ({ exact: id })),
            match_typed_subject_alt_names: identities.map((id) => ({ san_type: 'URI', matcher: { exact: id } })),
          },
        },
      }),
    },
  };
}
