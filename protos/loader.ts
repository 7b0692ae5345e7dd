// The one place that knows where Envoy's API protos come from: the pinned
// @grpc/grpc-js-xds package ships them (with xds, googleapis and validate) under deps/.
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import * as protoLoader from '@grpc/proto-loader';

const require = createRequire(import.meta.url);
const depsRoot = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

export const includeDirs = [
  path.join(depsRoot, 'envoy-api'),
  path.join(depsRoot, 'xds'),
  path.join(depsRoot, 'googleapis'),
  path.join(depsRoot, 'protoc-gen-validate'),
];

/** Every proto whose messages Tessera emits or reads. An Any naming a type that is
 *  not loaded here would encode as an empty Any, so each extension we emit is listed. */
export const resourceProtos = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/admin/v3/config_dump.proto',
  'google/protobuf/wrappers.proto',
  'google/protobuf/duration.proto',
  'google/protobuf/struct.proto',
  'google/rpc/status.proto',
];

let root: protobuf.Root | undefined;

/** A protobufjs Root with every resource proto, field names kept in snake_case
 *  (the spelling of Envoy's docs and config dumps). */
export function envoyRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      try {
        require('node:fs').accessSync(candidate);
        return candidate;
      } catch {
        /* try the next include dir */
      }
    }
    return protobuf.util.path.resolve(origin, target);
  };
  r.loadSync(resourceProtos, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

const ownProtos = path.dirname(new URL(import.meta.url).pathname);

let grpcDefinitions: protoLoader.PackageDefinition | undefined;

/** gRPC service definitions (ADS, SDS, CSDS) for @grpc/grpc-js. Any stays
 *  {type_url, value: Buffer} so resources are serialized once per snapshot. */
export function grpcPackageDefinition(): protoLoader.PackageDefinition {
  grpcDefinitions ??= protoLoader.loadSync(
    [
      'envoy/service/discovery/v3/ads.proto',
      'envoy/service/secret/v3/sds.proto',
      'envoy/service/status/v3/csds.proto',
    ],
    { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true, includeDirs },
  );
  return grpcDefinitions;
}


let demoDefinition: protoLoader.PackageDefinition | undefined;

/** The demo Echo service (protos/tessera/demo/v1/echo.proto). */
export function demoPackageDefinition(): protoLoader.PackageDefinition {
  demoDefinition ??= protoLoader.loadSync('tessera/demo/v1/echo.proto', { includeDirs: [ownProtos] });
  return demoDefinition;
}

let metricsDefinition: protoLoader.PackageDefinition | undefined;

/** Envoy's metrics service (envoy.stat_sinks.metrics_service streams to it). Its
 *  Prometheus messages come from protos/io/prometheus/client (not in the pinned
 *  package); 64-bit counts decode as numbers, they are request counts. */
export function metricsPackageDefinition(): protoLoader.PackageDefinition {
  metricsDefinition ??= protoLoader.loadSync('envoy/service/metrics/v3/metrics_service.proto', {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: false,
    oneofs: true,
    includeDirs: [...includeDirs, ownProtos],
  });
  return metricsDefinition;
}
