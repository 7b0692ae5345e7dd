// Pure translation: typed mesh model + proxy context in, Envoy resources out.
// No I/O, no clock, no globals. (Implementation: see the files beside this one.)
import type { Endpoint, MeshModel, ProxyContext } from '../model/types.ts';
import { TypeUrl, type ResourceTypeUrl } from '../xds/resources/type-urls.ts';
import { inboundCluster, outboundClusters, passthroughCluster } from './clusters.ts';
import { buildContext, byName } from './context.ts';
import { loadAssignments } from './endpoints.ts';
import { apiListeners, inboundCaptureListener, inboundListener, outboundListener } from './listeners.ts';
import { outboundRouteConfiguration, proxylessRouteConfigurations } from './routes.ts';

/** One Envoy resource in protobufjs object form (see xds/resources/codec.ts). */
export interface NamedResource {
  name: string;
  resource: Record<string, unknown>;
}

export type ResourceSet = Partial<Record<ResourceTypeUrl, NamedResource[]>>;

export interface TranslateInput {
  model: MeshModel;
  /** All known instances (EndpointSlice files merged with the registry), healthy or not. */
  endpoints: Endpoint[];
  proxy: ProxyContext;
}

/** Builds every resource one proxy group is served. Each list is sorted by name,
 *  so equal inputs give byte-equal output and content-hash versions stay put. */
export function translate(input: TranslateInput): ResourceSet {
  const ctx = buildContext(input.model, input.endpoints, input.proxy);
  const clusters = outboundClusters(ctx);
  const listeners: NamedResource[] = [];
  const routeConfigs: NamedResource[] = [];
  if (ctx.proxy.kind === 'sidecar') {
    clusters.push(...present(inboundCluster(ctx), passthroughCluster(ctx)));
    listeners.push(...present(outboundListener(ctx), inboundListener(ctx), inboundCaptureListener(ctx)));
    routeConfigs.push(outboundRouteConfiguration(ctx));
  } else {
    listeners.push(...apiListeners(ctx));
    routeConfigs.push(...proxylessRouteConfigurations(ctx));
  }
  return {
    [TypeUrl.Cluster]: byName(clusters),
    [TypeUrl.ClusterLoadAssignment]: byName(loadAssignments(ctx)),
    [TypeUrl.Listener]: byName(listeners),
    [TypeUrl.RouteConfiguration]: byName(routeConfigs),
  };
}

function present<T>(...items: (T | undefined)[]): T[] {
  return items.filter((i): i is T => i !== undefined);
}
