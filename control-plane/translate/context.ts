// The precomputed view of the model the generators share (Kuma's "context"):
// services by key, the effective TrafficPolicy of a service, instances of a service.
import {
  serviceKey,
  type Endpoint,
  type MeshModel,
  type MeshService,
  type ProxyContext,
  type ServicePort,
  type TrafficPolicy,
} from '../model/types.ts';

export interface TranslateContext {
  model: MeshModel;
  proxy: ProxyContext;
  /** Proxyless gRPC clients understand a subset of Envoy's API (see XDS-NOTES.md). */
  proxyless: boolean;
  /** Services sorted by namespace, then name. */
  services: MeshService[];
  service(name: string, namespace: string): MeshService | undefined;
  /** The merged TrafficPolicy targeting a service, if any. */
  policy(name: string, namespace: string): TrafficPolicy | undefined;
  /** Every known instance of a service, healthy or not. */
  instances(name: string, namespace: string): Endpoint[];
}

/** The part of the context that does not depend on the proxy: built once per
 *  change and shared by the contexts of every proxy group. */
export interface MeshView {
  model: MeshModel;
  services: MeshService[];
  byKey: Map<string, MeshService>;
  policies: Map<string, TrafficPolicy>;
  instances: Map<string, Endpoint[]>;
}

export function meshView(model: MeshModel, endpoints: Endpoint[]): MeshView {
  const services = [...model.services].sort((a, b) => compare(a.namespace, b.namespace) || compare(a.name, b.name));
  return {
    model,
    services,
    byKey: new Map(services.map((s) => [serviceKey(s.name, s.namespace), s])),
    policies: mergedPolicies(model.policies),
    instances: groupBy(endpoints, (e) => serviceKey(e.service, e.namespace)),
  };
}

export function contextFor(view: MeshView, proxy: ProxyContext): TranslateContext {
  return {
    model: view.model,
    proxy,
    proxyless: proxy.kind === 'proxyless',
    services: view.services,
    service: (name, namespace) => view.byKey.get(serviceKey(name, namespace)),
    policy: (name, namespace) => view.policies.get(serviceKey(name, namespace)),
    instances: (name, namespace) => view.instances.get(serviceKey(name, namespace)) ?? [],
  };
}

export function buildContext(model: MeshModel, endpoints: Endpoint[], proxy: ProxyContext): TranslateContext {
  return contextFor(meshView(model, endpoints), proxy);
}

/** Several policies may target one service; for each field the first policy (by
 *  namespace/name) that sets it wins, so the result does not depend on file order. */
function mergedPolicies(policies: TrafficPolicy[]): Map<string, TrafficPolicy> {
  const sorted = [...policies].sort((a, b) => compare(a.namespace, b.namespace) || compare(a.name, b.name));
  const merged = new Map<string, TrafficPolicy>();
  for (const policy of sorted) {
    for (const target of policy.targets) {
      const key = serviceKey(target.service, target.namespace);
      const previous = merged.get(key);
      merged.set(key, previous ? { ...definedOnly(policy), ...definedOnly(previous) } : policy);
    }
  }
  return merged;
}

function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The service port a backend reference means: the given port, or the first one. */
export function resolvePort(service: MeshService, port?: number): ServicePort | undefined {
  return port === undefined ? service.ports[0] : service.ports.find((p) => p.port === port);
}

export function isHttpPort(port: ServicePort): boolean {
  return port.appProtocol !== 'tcp';
}

export function isHttp2Port(port: ServicePort): boolean {
  return port.appProtocol === 'http2' || port.appProtocol === 'grpc';
}

/** Byte-order comparison: unlike localeCompare it does not depend on the host's locale. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function byName<T extends { name: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => compare(a.name, b.name));
}

export function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
