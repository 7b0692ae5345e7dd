// Renders a translator ResourceSet as one static Envoy bootstrap, so a real Envoy
// can check it with `envoy --mode validate` without a control plane: RDS becomes
// an inline route_config, EDS clusters become STATIC with their load assignment.
import { encodeAny } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';
import type { ResourceSet } from '../../control-plane/translate/index.ts';

type Obj = Record<string, any>;

export const BOOTSTRAP_TYPE_URL = 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap';

function byName(set: ResourceSet, typeUrl: keyof ResourceSet): Map<string, Obj> {
  return new Map((set[typeUrl] ?? []).map((r) => [r.name, structuredClone(r.resource) as Obj]));
}

export function staticBootstrap(set: ResourceSet): Obj {
  const routes = byName(set, TypeUrl.RouteConfiguration);
  const assignments = byName(set, TypeUrl.ClusterLoadAssignment);
  const listeners = [...byName(set, TypeUrl.Listener).values()].map((l) => inlineRoutes(l, routes));
  const clusters = [...byName(set, TypeUrl.Cluster).values()].map((c) => staticCluster(c, assignments));
  // Listeners and clusters with mTLS ask the agent's SDS cluster, which the sidecar
  // bootstrap defines (sidecar/bootstrap/bootstrap.ts); validation never connects to it.
  if (JSON.stringify(set).includes('"tessera_sds"')) {
    clusters.push({
      name: 'tessera_sds',
      type: 'STATIC',
      connect_timeout: { seconds: 1 },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
      load_assignment: { cluster_name: 'tessera_sds', endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: '/tmp/tessera-validate-sds.sock' } } } }] }] },
    });
  }
  return {
    node: { id: 'envoy-validate', cluster: 'envoy-validate' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: { listeners, clusters },
  };
}

function inlineRoutes(listener: Obj, routes: Map<string, Obj>): Obj {
  for (const chain of listener.filter_chains ?? []) {
    for (const filter of chain.filters ?? []) {
      const hcm = filter.typed_config;
      if (!hcm?.rds) continue;
      const name = hcm.rds.route_config_name;
      const routeConfig = routes.get(name);
      if (!routeConfig) throw new Error(`listener ${listener.name} names route config ${name}, which is missing`);
      delete hcm.rds;
      hcm.route_config = routeConfig;
    }
  }
  return listener;
}

function staticCluster(cluster: Obj, assignments: Map<string, Obj>): Obj {
  if (cluster.type !== 'EDS') return cluster;
  const name = cluster.eds_cluster_config?.service_name || cluster.name;
  const assignment = assignments.get(name);
  if (!assignment) throw new Error(`cluster ${cluster.name} names load assignment ${name}, which is missing`);
  delete cluster.eds_cluster_config;
  return { ...cluster, type: 'STATIC', load_assignment: assignment };
}

/** Binary protobuf, checked for unknown fields by the codec on the way. */
export function encodeBootstrap(bootstrap: Obj): Buffer {
  return encodeAny(BOOTSTRAP_TYPE_URL, bootstrap).value;
}
