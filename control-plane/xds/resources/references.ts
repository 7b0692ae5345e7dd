// Which resources a resource points at, for the snapshot consistency check:
// a cluster names its load assignment, a listener names its route configurations.
import { TypeUrl } from './type-urls.ts';

export interface ResourceRef {
  typeUrl: string;
  name: string;
}

// biome-ignore lint/suspicious/noExplicitAny: walks resources the translator built (typed there); any field may be absent
type Obj = Record<string, any>;

export function references(typeUrl: string, resource: Obj): ResourceRef[] {
  if (typeUrl === TypeUrl.Cluster) return clusterRefs(resource);
  if (typeUrl === TypeUrl.Listener) return listenerRefs(resource);
  return [];
}

function clusterRefs(cluster: Obj): ResourceRef[] {
  if (cluster.type !== 'EDS') return [];
  const name = cluster.eds_cluster_config?.service_name || cluster.name;
  return [{ typeUrl: TypeUrl.ClusterLoadAssignment, name }];
}

function listenerRefs(listener: Obj): ResourceRef[] {
  const managers: Obj[] = [];
  const api = listener.api_listener?.api_listener;
  if (api) managers.push(api);
  for (const chain of listener.filter_chains ?? []) {
    for (const filter of chain.filters ?? []) {
      if (filter.typed_config?.rds) managers.push(filter.typed_config);
    }
  }
  return managers
    .filter((m) => m.rds?.route_config_name)
    .map((m) => ({ typeUrl: TypeUrl.RouteConfiguration, name: m.rds.route_config_name as string }));
}
