// Pure translation: typed mesh model + proxy context in, Envoy resources out.
// No I/O, no clock, no globals. (Implementation: see the files beside this one.)
//
// The resources of one type depend on only part of the proxy context (every sidecar
// of a zone gets the same endpoints), so besides `translate` for one proxy this module
// offers one builder per type and the key of the context it depends on: proxies with
// equal keys get equal resources, which a caller may build once and share.
import type { Endpoint, MeshModel, MeshService, ProxyContext } from '../model/types.ts';
import { TypeUrl, type ResourceTypeUrl } from '../xds/resources/type-urls.ts';
import { inboundCluster, outboundClusters, passthroughCluster } from './clusters.ts';
import { byName, contextFor, meshView, type MeshView } from './context.ts';
import { loadAssignments, serviceLoadAssignments } from './endpoints.ts';
import { apiListeners, inboundCaptureListener, inboundListener, outboundListener } from './listeners.ts';
import { outboundRouteConfiguration, proxylessRouteConfigurations } from './routes.ts';
import { collectorCluster } from './telemetry.ts';
import { comparatorCluster } from './comparator.ts';

export { meshView, type MeshView } from './context.ts';

/** One Envoy resource in protobufjs object form (see xds/resources/codec.ts). */
export interface NamedResource {
  name: string;
  /** An Envoy message in the codec's object form (typed by translate/envoy-types.ts). */
  resource: object;
}

export type ResourceSet = Partial<Record<ResourceTypeUrl, NamedResource[]>>;

export interface TranslateInput {
  model: MeshModel;
  /** All known instances (EndpointSlice files merged with the registry), healthy or not. */
  endpoints: Endpoint[];
  proxy: ProxyContext;
}

/** The resource types the translator emits, in ADS order. */
export const TRANSLATED_TYPES = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration] as const;
export type TranslatedType = (typeof TRANSLATED_TYPES)[number];

/** Builds every resource one proxy group is served. Each list is sorted by name,
 *  so equal inputs give byte-equal output and content-hash versions stay put. */
export function translate(input: TranslateInput): ResourceSet {
  const view = meshView(input.model, input.endpoints);
  const out: ResourceSet = {};
  for (const typeUrl of TRANSLATED_TYPES) out[typeUrl] = translateType(view, input.proxy, typeUrl);
  return out;
}

/** The resources of one type for a proxy, sorted by name. */
export function translateType(view: MeshView, proxy: ProxyContext, typeUrl: TranslatedType): NamedResource[] {
  const ctx = contextFor(view, proxy);
  switch (typeUrl) {
    case TypeUrl.Cluster: {
      const clusters = outboundClusters(ctx);
      clusters.push(...present(inboundCluster(ctx), passthroughCluster(ctx), collectorCluster(ctx), comparatorCluster(ctx)));
      return byName(clusters);
    }
    case TypeUrl.ClusterLoadAssignment:
      return byName(loadAssignments(ctx));
    case TypeUrl.Listener:
      return byName(ctx.proxy.kind === 'sidecar' ? present(outboundListener(ctx), inboundListener(ctx), inboundCaptureListener(ctx)) : apiListeners(ctx));
    case TypeUrl.RouteConfiguration:
      return byName(ctx.proxy.kind === 'sidecar' ? [outboundRouteConfiguration(ctx)] : proxylessRouteConfigurations(ctx));
  }
}

/** The load assignments of one service (one per port): what an endpoint change of
 *  that service alters. Its names do not depend on the endpoints. */
export function translateServiceEndpoints(view: MeshView, proxy: ProxyContext, service: MeshService): NamedResource[] {
  return serviceLoadAssignments(contextFor(view, proxy), service);
}

/** The part of a proxy context that the resources of `typeUrl` depend on. Fields are
 *  left out only where it is known that they do not matter, so a new context field
 *  splits sharing (safe) rather than being ignored (wrong). */
export function dependencyKey(proxy: ProxyContext, typeUrl: TranslatedType): string {
  // Endpoints: only the proxy's zone picks priorities.
  if (typeUrl === TypeUrl.ClusterLoadAssignment) return `zone=${proxy.zone ?? ''}`;
  if (proxy.kind === 'proxyless') return proxy.certificates ? 'proxyless+certificates' : 'proxyless';
  const { zone, ...rest } = proxy;
  const irrelevant: Record<TranslatedType, string[]> = {
    [TypeUrl.Cluster]: ['outbound'],
    [TypeUrl.ClusterLoadAssignment]: [],
    [TypeUrl.Listener]: [],
    [TypeUrl.RouteConfiguration]: ['outbound', 'inbound', 'service'],
  };
  const kept = Object.fromEntries(Object.entries(rest).filter(([k]) => !irrelevant[typeUrl].includes(k)));
  return stableJson(kept);
}

function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
}

function present<T>(...items: (T | undefined)[]): T[] {
  return items.filter((i): i is T => i !== undefined);
}
