// EDS: one ClusterLoadAssignment per service port, endpoints grouped by zone.
import type { Endpoint, Health, MeshService, ServicePort } from '../model/types.ts';
import { socketAddress } from './config-source.ts';
import { compare, type TranslateContext } from './context.ts';
import type { ClusterLoadAssignment, LocalityLbEndpoints } from './envoy-types.ts';
import { wrap } from './duration.ts';
import type { NamedResource } from './index.ts';
import { outboundClusterName } from './names.ts';
import { endpointTlsMetadata } from './tls.ts';

export function loadAssignments(ctx: TranslateContext): NamedResource[] {
  return ctx.services.flatMap((service) => serviceLoadAssignments(ctx, service));
}

export function serviceLoadAssignments(ctx: TranslateContext, service: MeshService): NamedResource[] {
  return service.ports.map((port) => {
    const name = outboundClusterName(service.name, service.namespace, port.port);
    return { name, resource: loadAssignment(name, portInstances(ctx, service, port), ctx.proxy.zone) };
  });
}

/** The instances behind one service port: those on its targetPort, or every
 *  instance when the service has a single port (then the instance port is all
 *  there is to know, as for a service implied by a registration). */
export function portInstances(ctx: TranslateContext, service: MeshService, port: ServicePort): Endpoint[] {
  const all = ctx.instances(service.name, service.namespace);
  return service.ports.length === 1 ? all : all.filter((e) => e.port === port.targetPort);
}

const HEALTH_STATUS = { healthy: 'HEALTHY', unhealthy: 'UNHEALTHY', unknown: 'UNKNOWN' } as const satisfies Record<Health, string>;

/** Only healthy instances are sent. Unhealthy ones are left out rather than sent as
 *  UNHEALTHY, so proxyless gRPC and Envoy agree and a failed instance stops getting
 *  traffic on the next push; an instance whose check has not passed yet (unknown,
 *  e.g. a TTL instance before its first heartbeat) gets none either, as in Consul.
 *  Localities are sorted by zone, endpoints by address, for stable hashes. */
export function loadAssignment(clusterName: string, instances: Endpoint[], localZone?: string): ClusterLoadAssignment {
  const serving = dedupe(instances.filter((e) => e.health === 'healthy'));
  const byZone = new Map<string, Endpoint[]>();
  for (const e of serving) byZone.set(e.zone ?? '', [...(byZone.get(e.zone ?? '') ?? []), e]);
  const zones = [...byZone.keys()].sort(compare);
  return {
    cluster_name: clusterName,
    endpoints: zones.map((zone) => localityEndpoints(zone, byZone.get(zone)!, priority(zone, localZone, byZone))),
  };
}

/** Zone failover: a proxy that knows its zone gets the instances there at priority 0
 *  and the rest at priority 1, used when the local ones fail (they leave EDS when
 *  unhealthy). Without local instances every locality is priority 0, as Envoy wants
 *  priorities to start at 0 with no gaps. */
function priority(zone: string, localZone: string | undefined, byZone: Map<string, Endpoint[]>): number {
  if (!localZone || !byZone.has(localZone)) return 0;
  return zone === localZone ? 0 : 1;
}

/** grpc-js-xds ignores a locality without load_balancing_weight; equal weights
 *  keep Envoy's behaviour the same as without locality weighting. */
function localityEndpoints(zone: string, instances: Endpoint[], priority: number): LocalityLbEndpoints {
  return {
    locality: zone ? { zone } : {},
    load_balancing_weight: wrap(1),
    ...(priority > 0 ? { priority } : {}),
    lb_endpoints: instances.map((e) => ({
      endpoint: { address: socketAddress(e.address, e.port) },
      health_status: HEALTH_STATUS[e.health],
      ...endpointTlsMetadata(e),
    })),
  };
}

/** The same address may be declared in a file and registered too; Envoy and gRPC
 *  would count it twice. Keeps one per address, the healthy one if any. */
function dedupe(instances: Endpoint[]): Endpoint[] {
  const rank = (e: Endpoint) => (e.health === 'healthy' ? 0 : 1);
  const sorted = [...instances].sort(
    (a, b) => compare(a.address, b.address) || a.port - b.port || rank(a) - rank(b) || compare(a.id, b.id),
  );
  return sorted.filter((e, i) => i === 0 || e.address !== sorted[i - 1].address || e.port !== sorted[i - 1].port);
}
