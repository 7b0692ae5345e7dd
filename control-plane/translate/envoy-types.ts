// The Envoy message types the translator emits, generated from the pinned protos by
// protos/generate-types.ts (proto-loader-gen-types, run at npm install). These are the
// "permissive" input types, in the object form the codec encodes (snake_case fields,
// enums as names, Anys as {'@type', ...fields}).
export type { Cluster } from '../../protos/generated/envoy/config/cluster/v3/Cluster.ts';
export type { _envoy_config_cluster_v3_CircuitBreakers_Thresholds as CircuitBreakerThresholds } from '../../protos/generated/envoy/config/cluster/v3/CircuitBreakers.ts';
export type { OutlierDetection } from '../../protos/generated/envoy/config/cluster/v3/OutlierDetection.ts';
export type { HealthCheck } from '../../protos/generated/envoy/config/core/v3/HealthCheck.ts';
export type { ConfigSource } from '../../protos/generated/envoy/config/core/v3/ConfigSource.ts';
export type { Address } from '../../protos/generated/envoy/config/core/v3/Address.ts';
export type { HeaderValueOption } from '../../protos/generated/envoy/config/core/v3/HeaderValueOption.ts';
export type { ClusterLoadAssignment } from '../../protos/generated/envoy/config/endpoint/v3/ClusterLoadAssignment.ts';
export type { LbEndpoint } from '../../protos/generated/envoy/config/endpoint/v3/LbEndpoint.ts';
export type { LocalityLbEndpoints } from '../../protos/generated/envoy/config/endpoint/v3/LocalityLbEndpoints.ts';
export type { Listener } from '../../protos/generated/envoy/config/listener/v3/Listener.ts';
export type { FilterChain } from '../../protos/generated/envoy/config/listener/v3/FilterChain.ts';
export type { ListenerFilter } from '../../protos/generated/envoy/config/listener/v3/ListenerFilter.ts';
export type { TcpProxy } from '../../protos/generated/envoy/extensions/filters/network/tcp_proxy/v3/TcpProxy.ts';
export type { Filter as NetworkFilter } from '../../protos/generated/envoy/config/listener/v3/Filter.ts';
export type { RouteConfiguration } from '../../protos/generated/envoy/config/route/v3/RouteConfiguration.ts';
export type { VirtualHost } from '../../protos/generated/envoy/config/route/v3/VirtualHost.ts';
export type { Route } from '../../protos/generated/envoy/config/route/v3/Route.ts';
export type {
  RouteAction,
  _envoy_config_route_v3_RouteAction_HashPolicy as HashPolicy,
  _envoy_config_route_v3_RouteAction_RequestMirrorPolicy as RequestMirrorPolicy,
} from '../../protos/generated/envoy/config/route/v3/RouteAction.ts';
export type { RouteMatch as EnvoyRouteMatch } from '../../protos/generated/envoy/config/route/v3/RouteMatch.ts';
export type { RetryPolicy as EnvoyRetryPolicy } from '../../protos/generated/envoy/config/route/v3/RetryPolicy.ts';
export type { RedirectAction } from '../../protos/generated/envoy/config/route/v3/RedirectAction.ts';
export type { HeaderMatcher } from '../../protos/generated/envoy/config/route/v3/HeaderMatcher.ts';
export type { StringMatcher } from '../../protos/generated/envoy/type/matcher/v3/StringMatcher.ts';
export type { HttpConnectionManager } from '../../protos/generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.ts';
export type { HttpFilter } from '../../protos/generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpFilter.ts';
export type { HttpProtocolOptions } from '../../protos/generated/envoy/extensions/upstreams/http/v3/HttpProtocolOptions.ts';
export type { RBAC as HttpRbac } from '../../protos/generated/envoy/extensions/filters/http/rbac/v3/RBAC.ts';
export type { RBAC as NetworkRbac } from '../../protos/generated/envoy/extensions/filters/network/rbac/v3/RBAC.ts';
export type { RBAC as RbacRules } from '../../protos/generated/envoy/config/rbac/v3/RBAC.ts';
export type { Policy as RbacPolicy } from '../../protos/generated/envoy/config/rbac/v3/Policy.ts';
export type { Permission as RbacPermission } from '../../protos/generated/envoy/config/rbac/v3/Permission.ts';
export type { Principal as RbacPrincipal } from '../../protos/generated/envoy/config/rbac/v3/Principal.ts';
export type { AccessLog } from '../../protos/generated/envoy/config/accesslog/v3/AccessLog.ts';
export type { StdoutAccessLog } from '../../protos/generated/envoy/extensions/access_loggers/stream/v3/StdoutAccessLog.ts';
export type { FileAccessLog } from '../../protos/generated/envoy/extensions/access_loggers/file/v3/FileAccessLog.ts';
export type { OpenTelemetryConfig } from '../../protos/generated/envoy/config/trace/v3/OpenTelemetryConfig.ts';
export type { _envoy_extensions_filters_network_http_connection_manager_v3_HttpConnectionManager_Tracing as HcmTracing } from '../../protos/generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.ts';
export type { Router } from '../../protos/generated/envoy/extensions/filters/http/router/v3/Router.ts';
export type { TransportSocket } from '../../protos/generated/envoy/config/core/v3/TransportSocket.ts';
export type { DownstreamTlsContext } from '../../protos/generated/envoy/extensions/transport_sockets/tls/v3/DownstreamTlsContext.ts';
export type { UpstreamTlsContext } from '../../protos/generated/envoy/extensions/transport_sockets/tls/v3/UpstreamTlsContext.ts';
export type { CommonTlsContext } from '../../protos/generated/envoy/extensions/transport_sockets/tls/v3/CommonTlsContext.ts';
export type { SdsSecretConfig } from '../../protos/generated/envoy/extensions/transport_sockets/tls/v3/SdsSecretConfig.ts';
export type { _envoy_config_cluster_v3_Cluster_TransportSocketMatch as TransportSocketMatch } from '../../protos/generated/envoy/config/cluster/v3/Cluster.ts';

import type { Any } from '../../protos/generated/google/protobuf/Any.ts';

/** A google.protobuf.Any holding `message`, which is typed as what it holds. */
export function typedAny<T extends object>(typeUrl: string, message: T): Any {
  return { '@type': typeUrl, ...message } as Any;
}
