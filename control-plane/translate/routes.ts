// RDS: the sidecar's `outbound_http` route table (one virtual host per HTTP service
// port) and, for proxyless gRPC, one RouteConfiguration per service port.
import type { MeshService, ServicePort } from '../model/types.ts';
import { byName, isHttpPort, type TranslateContext } from './context.ts';
import type { Route, RouteConfiguration, VirtualHost } from './envoy-types.ts';
import { duration } from './duration.ts';
import type { NamedResource } from './index.ts';
import {
  CLUSTER_DOMAIN,
  OUTBOUND_HTTP_ROUTE_CONFIG,
  outboundClusterName,
  PASSTHROUGH_CLUSTER,
  PASSTHROUGH_VIRTUAL_HOST,
  proxylessRouteConfigName,
  virtualHostName,
} from './names.ts';
import { headerModifiers, routeAction, type Parent } from './route-action.ts';
import { byPrecedence, envoyMatches, matchesEverything, type MatchCandidate } from './route-match.ts';

export function outboundRouteConfiguration(ctx: TranslateContext): NamedResource {
  const claimed = new Set<string>();
  const virtualHosts = httpPorts(ctx).flatMap(({ service, port }): (VirtualHost & { name: string })[] => {
    // Envoy NACKs a route table in which two virtual hosts share a domain, so a
    // domain already claimed (first by namespace/name order) is not offered again.
    const domains = sidecarDomains(ctx, service, port).filter((d) => !claimed.has(d));
    for (const d of domains) claimed.add(d);
    if (domains.length === 0) return [];
    return [{ name: virtualHostName(service.name, service.namespace, port.port), domains, routes: routesFor(ctx, service, port) }];
  });
  if (ctx.proxy.kind === 'sidecar' && ctx.proxy.capture) {
    // Captured HTTP to a host the mesh does not know goes where the app sent it.
    // Envoy picks `*` only when no other domain matches, whatever the order.
    virtualHosts.push({
      name: PASSTHROUGH_VIRTUAL_HOST,
      domains: ['*'],
      routes: [{ match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: duration(0) } }],
    });
  }
  const name = OUTBOUND_HTTP_ROUTE_CONFIG;
  const resource: RouteConfiguration = { name, virtual_hosts: byName(virtualHosts) };
  return { name, resource };
}

/** grpc-js-xds picks the virtual host by the dialed authority; each of these route
 *  tables serves exactly one service port, so `*` is unambiguous. */
export function proxylessRouteConfigurations(ctx: TranslateContext): NamedResource[] {
  return httpPorts(ctx).map(({ service, port }) => {
    const name = proxylessRouteConfigName(service.name, service.namespace, port.port);
    const virtualHost: VirtualHost = { name, domains: ['*'], routes: routesFor(ctx, service, port) };
    const resource: RouteConfiguration = { name, virtual_hosts: [virtualHost] };
    return { name, resource };
  });
}

/** Every non-TCP service port, services in namespace/name order. */
export function httpPorts(ctx: TranslateContext): { service: MeshService; port: ServicePort }[] {
  // TODO(tcp): appProtocol tcp ports get a cluster but no listener or route yet;
  // they need a tcp_proxy listener per port (a port cannot be told apart by Host).
  return ctx.services.flatMap((service) => service.ports.filter(isHttpPort).map((port) => ({ service, port })));
}

/** The names an application may use for a service port. Short names (`X`, `X:PORT`)
 *  resolve in the sidecar's own namespace only, as Kubernetes DNS search does; the
 *  port-less forms belong to the service's first HTTP port. */
export function sidecarDomains(ctx: TranslateContext, service: MeshService, port: ServicePort): string[] {
  const local = ctx.proxy.kind === 'sidecar' && ctx.proxy.namespace === service.namespace;
  const hosts = [
    ...(local ? [service.name] : []),
    `${service.name}.${service.namespace}`,
    `${service.name}.${service.namespace}.svc`,
    `${service.name}.${service.namespace}.svc.${CLUSTER_DOMAIN}`,
  ];
  const firstHttp = service.ports.find(isHttpPort) === port;
  return hosts.flatMap((h) => (firstHttp ? [h, `${h}:${port.port}`] : [`${h}:${port.port}`]));
}

/** The routes of one service port: every attached Route's matches in Gateway API
 *  precedence order, then a catch-all to the service itself unless a rule already
 *  matches everything. */
export function routesFor(ctx: TranslateContext, service: MeshService, port: ServicePort): Route[] {
  const parent: Parent = { service: service.name, namespace: service.namespace, port: port.port };
  const candidates = attachedMatches(ctx, parent).sort(byPrecedence);
  const routes = candidates.flatMap((c) => envoyRoutes(ctx, parent, c));
  if (!candidates.some((c) => matchesEverything(c.match))) routes.push(defaultRoute(ctx, parent));
  return routes;
}

function attachedMatches(ctx: TranslateContext, parent: Parent): MatchCandidate[] {
  return ctx.model.routes.flatMap((route, ri) => {
    const attached = route.parents.some(
      (p) => p.service === parent.service && p.namespace === parent.namespace && (p.port === undefined || p.port === parent.port),
    );
    if (!attached) return [];
    return route.rules.flatMap((rule, ki) =>
      rule.matches.length === 0
        ? [{ route, rule, order: [ri, ki, 0] as [number, number, number] }]
        : rule.matches.map((match, mi) => ({ route, rule, match, order: [ri, ki, mi] as [number, number, number] })),
    );
  });
}

function envoyRoutes(ctx: TranslateContext, parent: Parent, c: MatchCandidate): Route[] {
  const action = routeAction(ctx, parent, c.rule, c.match);
  if (!action) return [];
  const name = `${c.route.namespace}/${c.route.name}/${c.order[1]}/${c.order[2]}`;
  return envoyMatches(c.match, ctx.proxyless).map((match) => ({ name, match, ...action, ...headerModifiers(c.rule.filters) }));
}

/** What a request no Route claims gets: the service port's own cluster, with the
 *  TrafficPolicy's timeout and retry. */
function defaultRoute(ctx: TranslateContext, parent: Parent): Route {
  const action = routeAction(ctx, parent, { matches: [], backends: [], filters: [] }) ?? {
    route: { cluster: outboundClusterName(parent.service, parent.namespace, parent.port) },
  };
  return { name: 'default', match: { prefix: '/' }, ...action };
}
