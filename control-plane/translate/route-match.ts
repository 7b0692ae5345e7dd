// Gateway API matches -> Envoy RouteMatch, and the precedence order between them.
import type { Route, RouteMatch, RouteRule, StringMatch } from '../model/types.ts';
import type { EnvoyRouteMatch, HeaderMatcher, StringMatcher } from './envoy-types.ts';

/** One (route, rule, match) triple: it becomes one Envoy route (two for a proxyless
 *  path prefix, see envoyMatches). `match` is undefined for a rule without matches. */
export interface MatchCandidate {
  route: Route;
  rule: RouteRule;
  match?: RouteMatch;
  /** Position in the model: route index, rule index, match index (the tie-breaker). */
  order: [number, number, number];
}

/** Gateway API precedence: exact path, then longest prefix, then a method match,
 *  then most header matches, then most query matches; ties keep model order (the
 *  loader's creation order), then rule order, then match order. RegularExpression
 *  precedence is implementation-specific: here after Exact, before any prefix. */
export function byPrecedence(a: MatchCandidate, b: MatchCandidate): number {
  return (
    pathRank(a.match) - pathRank(b.match) ||
    prefixLength(b.match) - prefixLength(a.match) ||
    Number(b.match?.method !== undefined) - Number(a.match?.method !== undefined) ||
    (b.match?.headers.length ?? 0) - (a.match?.headers.length ?? 0) ||
    (b.match?.queryParams.length ?? 0) - (a.match?.queryParams.length ?? 0) ||
    a.order[0] - b.order[0] ||
    a.order[1] - b.order[1] ||
    a.order[2] - b.order[2]
  );
}

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

function pathRank(match?: RouteMatch): number {
  return PATH_RANK[match?.path?.type ?? 'PathPrefix'];
}

function prefixLength(match?: RouteMatch): number {
  return match?.path?.type === 'PathPrefix' ? normalizedPrefix(match.path.value).length : 1;
}

/** True when the match accepts every request, so no default route is needed. */
export function matchesEverything(match?: RouteMatch): boolean {
  if (!match) return true;
  const everyPath = !match.path || (match.path.type === 'PathPrefix' && normalizedPrefix(match.path.value) === '/');
  return everyPath && match.headers.length === 0 && match.queryParams.length === 0 && match.method === undefined;
}

/** Gateway API ignores a trailing slash in a PathPrefix (`/api/` == `/api`). */
export function normalizedPrefix(value: string): string {
  const trimmed = value.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

/** The Envoy matches for one Gateway API match. A PathPrefix matches whole path
 *  segments (`/api` matches `/api/x`, not `/apix`): Envoy says that with
 *  path_separated_prefix, which grpc-js-xds NACKs, so proxyless clients get the
 *  equivalent pair `path: /api` + `prefix: /api/`. */
export function envoyMatches(match: RouteMatch | undefined, proxyless: boolean): EnvoyRouteMatch[] {
  const conditions = match ? extraConditions(match) : {};
  return pathSpecifiers(match, proxyless).map((path) => ({ ...path, ...conditions }));
}

function pathSpecifiers(match: RouteMatch | undefined, proxyless: boolean): EnvoyRouteMatch[] {
  const path = match?.path;
  if (!path) return [{ prefix: '/' }];
  if (path.type === 'Exact') return [{ path: path.value }];
  if (path.type === 'RegularExpression') return [{ safe_regex: { regex: path.value } }];
  const prefix = normalizedPrefix(path.value);
  if (prefix === '/') return [{ prefix: '/' }];
  return proxyless ? [{ path: prefix }, { prefix: `${prefix}/` }] : [{ path_separated_prefix: prefix }];
}

function extraConditions(match: RouteMatch): Pick<EnvoyRouteMatch, 'headers' | 'query_parameters'> {
  const headers = match.headers.map(headerMatcher);
  if (match.method !== undefined) headers.push({ name: ':method', string_match: { exact: match.method } });
  const conditions: Pick<EnvoyRouteMatch, 'headers' | 'query_parameters'> = {};
  if (headers.length > 0) conditions.headers = headers;
  if (match.queryParams.length > 0) {
    conditions.query_parameters = match.queryParams.map((q) => ({ name: q.name, string_match: stringMatcher(q) }));
  }
  return conditions;
}

function headerMatcher(h: StringMatch): HeaderMatcher {
  return { name: h.name, string_match: stringMatcher(h) };
}

function stringMatcher(m: StringMatch): StringMatcher {
  return m.type === 'Exact' ? { exact: m.value } : { safe_regex: { regex: m.value } };
}
