// The traffic split a Canary controller serves, laid over the config model: the
// user's files are never written, so a config reload (or a git sync) does not fight
// it. Pure: model + weights in, the model as served out.
import type { BackendRef, MeshModel, Route, RouteFilter, RouteMatch, RouteRule } from '../model/types.ts';

export interface TrafficSplit {
  /** Canary namespace/name, for the synthetic route's name. */
  name: string;
  namespace: string;
  target: { service: string; namespace: string };
  stable: { service: string; namespace: string };
  canary: { service: string; namespace: string };
  /** Percent of the target's traffic the canary gets (0..100). */
  canaryWeight: number;
  /** A/B or BlueGreen while judged: besides its weight, the canary gets the requests
   *  that match (any one of `match`), or a mirror of what goes to stable. */
  test?: { match?: RouteMatch[]; mirror?: boolean };
  /** ParallelRun in progress: the split rules also mirror to the comparator. */
  mirror?: { percent: number };
}

const same = (b: { service: string; namespace: string }, s: { service: string; namespace: string }) => b.service === s.service && b.namespace === s.namespace;

/** Routes attached to the target: every rule that sends to the stable backend sends
 *  to stable and canary by the split instead (a rule that names only the canary, such
 *  as a header match for testers, is left alone). Without any route for the target, a
 *  route with one such rule is added. */
export function applySplits(model: MeshModel, splits: TrafficSplit[], comparator?: MeshModel['comparator']): MeshModel {
  if (splits.length === 0) return model;
  let routes = model.routes;
  for (const split of splits) {
    const attached = routes.some((r) => r.parents.some((p) => same(p, split.target)));
    if (!attached) {
      const route: Route = {
        kind: 'HTTPRoute',
        name: `canary-${split.name}`,
        namespace: split.namespace,
        parents: [{ service: split.target.service, namespace: split.target.namespace }],
        rules: splitRule({ matches: [], backends: [{ ...split.stable, weight: 1 }], filters: [] }, split, new Set()),
      };
      routes = [...routes, route];
      continue;
    }
    const canaryPorts = new Set(model.services.find((s) => s.name === split.canary.service && s.namespace === split.canary.namespace)?.ports.map((p) => p.port));
    routes = routes.map((r) =>
      r.parents.some((p) => same(p, split.target)) ? { ...r, rules: r.rules.flatMap((rule) => splitRule(rule, split, canaryPorts)) } : r,
    );
  }
  const mirrored = comparator !== undefined && splits.some((s) => s.mirror);
  return { ...model, routes, ...(mirrored ? { comparator } : {}) };
}

const mirrorOf = (split: TrafficSplit): Pick<RouteRule, 'comparatorMirror'> => (split.mirror ? { comparatorMirror: split.mirror } : {});

/** A rule that sends to stable, as served: split by weight; with test traffic, also a
 *  copy of the rule for the matching requests (its matches AND the test's, all to the
 *  canary; more headers, so it comes first in Gateway API precedence), or a mirror; in
 *  a parallel run, mirrored to the comparator. */
function splitRule(rule: RouteRule, split: TrafficSplit, canaryPorts: Set<number>): RouteRule[] {
  const stable = rule.backends.find((b) => same(b, split.stable));
  if (!stable) return [rule];
  // The canary's port: as the rule names it, else the stable's if the canary has it, else its first.
  const named = rule.backends.find((b) => same(b, split.canary))?.port;
  const canaryPort = named ?? (stable.port !== undefined && canaryPorts.has(stable.port) ? stable.port : undefined);
  const served: RouteRule = { ...rule, backends: splitBackends(split, stable.port, canaryPort), ...mirrorOf(split) };
  const test = split.test;
  if (!test) return [served];
  if (test.mirror) {
    const mirror: RouteFilter = { type: 'RequestMirror', requestMirror: { backend: { ...split.canary, ...(canaryPort !== undefined ? { port: canaryPort } : {}), weight: 1 } } };
    served.filters = [...rule.filters, mirror];
  }
  if (!test.match || test.match.length === 0) return [served];
  const own = rule.matches.length > 0 ? rule.matches : [{ headers: [], queryParams: [] }];
  const matches = own.flatMap((m) => test.match!.map((t): RouteMatch => ({ ...m, headers: [...m.headers, ...t.headers], queryParams: [...m.queryParams, ...t.queryParams] })));
  const toCanary: RouteRule = { ...rule, matches, backends: [{ ...split.canary, ...(canaryPort !== undefined ? { port: canaryPort } : {}), weight: 1 }] };
  return [toCanary, served];
}

/** Without a port, a backend is its Service's first port (translate's rule). */
function splitBackends(split: TrafficSplit, stablePort?: number, canaryPort?: number): BackendRef[] {
  const w = Math.max(0, Math.min(100, Math.round(split.canaryWeight)));
  const out: BackendRef[] = [];
  // Weight 0 is left out: Envoy needs a positive total, and nothing should reach it.
  if (w < 100) out.push({ ...split.stable, ...(stablePort !== undefined ? { port: stablePort } : {}), weight: 100 - w });
  if (w > 0) out.push({ ...split.canary, ...(canaryPort !== undefined ? { port: canaryPort } : {}), weight: w });
  return out;
}

/** Whether a split changes anything the target's clients see (a route for the
 *  target that never sends to the stable backend is left as it is). */
export function splitTakesEffect(model: MeshModel, split: Omit<TrafficSplit, 'canaryWeight'>): boolean {
  const attached = model.routes.filter((r) => r.parents.some((p) => same(p, split.target)));
  return attached.length === 0 || attached.some((r) => r.rules.some((rule) => rule.backends.some((b) => same(b, split.stable))));
}
