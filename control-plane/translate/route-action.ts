// What a matched request does: forward (backends, timeout, retry, rewrite, mirror,
// hashing), redirect, or fail; plus the header modifiers that sit on the route.
import type { BackendRef, HeaderModifier, RetryPolicy, RouteFilter, RouteMatch, RouteRule, TrafficPolicy } from '../model/types.ts';
import { resolvePort, type TranslateContext } from './context.ts';
import type {
  EnvoyRetryPolicy,
  HashPolicy,
  HeaderValueOption,
  RedirectAction,
  RequestMirrorPolicy,
  Route,
  RouteAction,
} from './envoy-types.ts';

import { mirrorsToComparator } from './comparator.ts';
import { duration, wrap } from './duration.ts';
import { COMPARATOR_CLUSTER, FILTER, outboundClusterName } from './names.ts';
import { normalizedPrefix } from './route-match.ts';
import { EXTENSION } from '../xds/resources/type-urls.ts';

type RewriteFields = Pick<RouteAction, 'prefix_rewrite' | 'regex_rewrite'>;
type HeaderFields = Pick<Route, 'request_headers_to_add' | 'request_headers_to_remove' | 'response_headers_to_add' | 'response_headers_to_remove'>;

/** The service port a virtual host belongs to, whose policy supplies defaults. */
export interface Parent {
  service: string;
  namespace: string;
  port: number;
}

// A protocol fact that belongs with EXTENSION in xds/resources/type-urls.ts.

/** When a route-level retry names no conditions: what Istio users expect from a
 *  sidecar (connection failures and resets), and the one retryable gRPC status. */
const DEFAULT_RETRY_ON = { sidecar: ['connect-failure', 'refused-stream', 'reset'], proxyless: ['unavailable'] };

/** The route's action fields (`route`, `redirect` or `direct_response`), or
 *  undefined when a proxyless client cannot be given this rule at all. */
export function routeAction(
  ctx: TranslateContext,
  parent: Parent,
  rule: RouteRule,
  match?: RouteMatch,
): Pick<Route, 'route' | 'redirect' | 'direct_response'> | undefined {
  const redirect = filterOf(rule.filters, 'RequestRedirect');
  if (redirect) {
    // grpc-js-xds NACKs a whole RouteConfiguration with a redirect action in it.
    return ctx.proxyless ? undefined : { redirect: redirectAction(redirect.requestRedirect, match) };
  }
  const clusters = weightedBackends(ctx, rule, parent);
  if (clusters.length === 0) {
    // Gateway API: no usable backend means a 500; grpc-js-xds has no direct_response.
    return ctx.proxyless ? undefined : { direct_response: { status: 500 } };
  }
  const policy = ctx.policy(parent.service, parent.namespace);
  return {
    route: {
      ...clusterSpecifier(clusters),
      ...timeout(ctx, rule, policy),
      ...retry(ctx, rule, policy),
      ...urlRewrite(rule.filters, match),
      ...mirrors(ctx, rule),
      ...hashPolicy(ctx, clusters),
    },
  };
}

/** Header modifiers live on the Route, beside the action. */
export function headerModifiers(filters: RouteFilter[]): HeaderFields {
  const fields: HeaderFields = {};
  const request = filterOf(filters, 'RequestHeaderModifier')?.requestHeaderModifier;
  const response = filterOf(filters, 'ResponseHeaderModifier')?.responseHeaderModifier;
  if (request) addModifier(fields, 'request', request);
  if (response) addModifier(fields, 'response', response);
  return fields;
}

function addModifier(fields: HeaderFields, side: 'request' | 'response', m: HeaderModifier): void {
  const toAdd: HeaderValueOption[] = [
    ...m.set.map((h) => ({ header: { key: h.name, value: h.value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' as const })),
    ...m.add.map((h) => ({ header: { key: h.name, value: h.value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' as const })),
  ];
  if (toAdd.length > 0) fields[`${side}_headers_to_add`] = toAdd;
  if (m.remove.length > 0) fields[`${side}_headers_to_remove`] = [...m.remove];
}

// ---- backends ----

interface WeightedCluster {
  name: string;
  weight: number;
  service: string;
  namespace: string;
}

/** Backends that resolve to a known service port and carry weight. A rule with no
 *  backendRefs forwards to its parent service (the GAMMA reading Linkerd uses too),
 *  so a filter-only rule still reaches the service it is attached to. */
function weightedBackends(ctx: TranslateContext, rule: RouteRule, parent: Parent): WeightedCluster[] {
  const refs: BackendRef[] =
    rule.backends.length > 0 ? rule.backends : [{ service: parent.service, namespace: parent.namespace, port: parent.port, weight: 1 }];
  return refs.flatMap((ref) => {
    const name = backendCluster(ctx, ref);
    return name && ref.weight > 0 ? [{ name, weight: ref.weight, service: ref.service, namespace: ref.namespace }] : [];
  });
}

/** The cluster of a backend, or undefined for a service (or port) the model lacks. */
export function backendCluster(ctx: TranslateContext, ref: Pick<BackendRef, 'service' | 'namespace' | 'port'>): string | undefined {
  const service = ctx.service(ref.service, ref.namespace);
  const port = service && resolvePort(service, ref.port);
  return port ? outboundClusterName(ref.service, ref.namespace, port.port) : undefined;
}

/** total_weight is deprecated (Envoy sums the weights), so it is not sent. */
function clusterSpecifier(clusters: WeightedCluster[]): Pick<RouteAction, 'cluster' | 'weighted_clusters'> {
  if (clusters.length === 1) return { cluster: clusters[0].name };
  return { weighted_clusters: { clusters: clusters.map((c) => ({ name: c.name, weight: wrap(c.weight) })) } };
}

// ---- timeouts and retries ----

/** Route-level `timeouts.request` wins over the parent's TrafficPolicy.timeout.
 *  gRPC reads its deadline from max_stream_duration, not timeout (gRFC A31). */
function timeout(ctx: TranslateContext, rule: RouteRule, policy?: TrafficPolicy): Pick<RouteAction, 'timeout' | 'max_stream_duration'> {
  const ms = rule.timeouts?.requestMs ?? policy?.timeoutMs;
  if (ms === undefined) return {};
  return ctx.proxyless ? { max_stream_duration: { max_stream_duration: duration(ms) } } : { timeout: duration(ms) };
}

/** A field-wise merge in which the route's retry wins over the policy's; empty
 *  lists in the route count as "not said" (the loader always fills them). */
export function mergeRetry(fromPolicy?: Partial<RetryPolicy>, fromRoute?: RetryPolicy): Partial<RetryPolicy> | undefined {
  if (!fromPolicy && !fromRoute) return undefined;
  const merged: Partial<RetryPolicy> = { ...fromPolicy };
  for (const [key, value] of Object.entries(fromRoute ?? {}) as [keyof RetryPolicy, unknown][]) {
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}

function retry(ctx: TranslateContext, rule: RouteRule, policy?: TrafficPolicy): Pick<RouteAction, 'retry_policy'> {
  const merged = mergeRetry(policy?.retry, rule.retry);
  const perTryMs = rule.timeouts?.backendRequestMs ?? merged?.perTryTimeoutMs;
  const attempts = merged ? (merged.attempts ?? 1) : 0;
  if (attempts <= 0) {
    // Envoy applies a per-try timeout to the first try even without retries;
    // grpc-js-xds NACKs a retry policy with fewer than one retry.
    return perTryMs !== undefined && !ctx.proxyless ? { retry_policy: { per_try_timeout: duration(perTryMs) } } : {};
  }
  const codes = merged?.codes ?? [];
  const conditions = merged?.retryOn?.length ? merged.retryOn : DEFAULT_RETRY_ON[ctx.proxyless ? 'proxyless' : 'sidecar'];
  const retryOn = [...new Set([...conditions, ...(codes.length > 0 ? ['retriable-status-codes'] : [])])];
  const policyProto: EnvoyRetryPolicy = { retry_on: retryOn.join(','), num_retries: wrap(attempts) };
  if (codes.length > 0) policyProto.retriable_status_codes = [...codes];
  if (perTryMs !== undefined) policyProto.per_try_timeout = duration(perTryMs);
  if (merged?.backoff) {
    policyProto.retry_back_off = {
      base_interval: duration(merged.backoff.baseIntervalMs),
      ...(merged.backoff.maxIntervalMs !== undefined ? { max_interval: duration(merged.backoff.maxIntervalMs) } : {}),
    };
  }
  if (!ctx.proxyless) Object.assign(policyProto, retryOtherHosts());
  return { retry_policy: policyProto };
}

/** Retry on a different host than the ones that already failed (Envoy only). */
function retryOtherHosts(): Pick<EnvoyRetryPolicy, 'retry_host_predicate' | 'host_selection_retry_max_attempts'> {
  return {
    retry_host_predicate: [{ name: FILTER.previousHostsPredicate, typed_config: { '@type': EXTENSION.previousHostsPredicate } }],
    host_selection_retry_max_attempts: 3,
  };
}

// ---- rewrite, mirror, hashing ----

function urlRewrite(filters: RouteFilter[], match?: RouteMatch): Pick<RouteAction, 'host_rewrite_literal'> & RewriteFields {
  const rewrite = filterOf(filters, 'URLRewrite')?.urlRewrite;
  if (!rewrite) return {};
  const fields: Pick<RouteAction, 'host_rewrite_literal'> & RewriteFields = {};
  if (rewrite.hostname !== undefined) fields.host_rewrite_literal = rewrite.hostname;
  if (rewrite.path?.type === 'ReplaceFullPath') {
    fields.regex_rewrite = { pattern: { regex: '^/.*$' }, substitution: rewrite.path.value };
  } else if (rewrite.path?.type === 'ReplacePrefixMatch') {
    Object.assign(fields, prefixRewrite(match, rewrite.path.value));
  }
  return fields;
}

/** ReplacePrefixMatch keeps segment boundaries: with match `/foo`, replacement
 *  `/bar` turns `/foo/x` into `/bar/x`, and `/` turns it into `/x` (not `//x`,
 *  which a plain prefix_rewrite would give; hence the regex for that case). */
export function prefixRewrite(match: RouteMatch | undefined, replacement: string): RewriteFields {
  const path = match?.path;
  if (path?.type === 'RegularExpression') {
    return { regex_rewrite: { pattern: { regex: path.value }, substitution: replacement } };
  }
  const prefix = path?.type === 'Exact' ? path.value : normalizedPrefix(path?.value ?? '/');
  if (prefix === '/') return { prefix_rewrite: replacement.endsWith('/') ? replacement : `${replacement}/` };
  if (replacement.replace(/\/+$/, '') === '') {
    return { regex_rewrite: { pattern: { regex: `^${escapeRegex(prefix)}/*` }, substitution: '/' } };
  }
  return { prefix_rewrite: replacement.replace(/\/+$/, '') };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function mirrors(ctx: TranslateContext, rule: RouteRule): Pick<RouteAction, 'request_mirror_policies'> {
  const policies = rule.filters.flatMap((f): RequestMirrorPolicy[] => {
    if (f.type !== 'RequestMirror') return [];
    const cluster = backendCluster(ctx, f.requestMirror.backend);
    return cluster ? [mirrorPolicy(cluster, f.requestMirror.percent)] : [];
  });
  // A ParallelRun: the comparator keeps the caller's Host (no `-shadow` suffix), by
  // which it tells which run a mirrored request belongs to.
  if (rule.comparatorMirror && mirrorsToComparator(ctx)) {
    policies.push({ ...mirrorPolicy(COMPARATOR_CLUSTER, rule.comparatorMirror.percent), disable_shadow_host_suffix_append: true });
  }
  return policies.length > 0 ? { request_mirror_policies: policies } : {};
}

/** A copy of `percent` (default all) of the requests to `cluster`; its answers are dropped. */
function mirrorPolicy(cluster: string, percent: number | undefined): RequestMirrorPolicy {
  const fraction =
    percent !== undefined && percent < 100
      ? { runtime_fraction: { default_value: { numerator: Math.max(0, Math.round(percent)), denominator: 'HUNDRED' as const } } }
      : {};
  return { cluster, ...fraction };
}

/** A RingHash TrafficPolicy on a backend needs the route to say what to hash. */
function hashPolicy(ctx: TranslateContext, clusters: WeightedCluster[]): Pick<RouteAction, 'hash_policy'> {
  const seen = new Set<string>();
  const policies: HashPolicy[] = [];
  for (const c of clusters) {
    const lb = ctx.policy(c.service, c.namespace)?.loadBalancer;
    if (lb?.policy !== 'RingHash' || !lb.hashOn) continue;
    for (const p of hashOn(lb.hashOn)) {
      const key = JSON.stringify(p);
      if (!seen.has(key)) policies.push(p);
      seen.add(key);
    }
  }
  return policies.length > 0 ? { hash_policy: policies } : {};
}

function hashOn(on: NonNullable<NonNullable<TrafficPolicy['loadBalancer']>['hashOn']>): HashPolicy[] {
  const out: HashPolicy[] = [];
  if (on.header) out.push({ header: { header_name: on.header } });
  if (on.cookie) out.push({ cookie: { name: on.cookie } });
  if (on.sourceIp) out.push({ connection_properties: { source_ip: true } });
  return out;
}

// ---- redirect ----

const REDIRECT_CODE = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
} as const;

type Redirect = Extract<RouteFilter, { type: 'RequestRedirect' }>['requestRedirect'];

/** Gateway API's default redirect status is 302 (Envoy's would be 301). */
function redirectAction(r: Redirect, match?: RouteMatch): RedirectAction {
  const action: RedirectAction = {};
  if (r.scheme !== undefined) action.scheme_redirect = r.scheme;
  if (r.hostname !== undefined) action.host_redirect = r.hostname;
  if (r.port !== undefined) action.port_redirect = r.port;
  if (r.path?.type === 'ReplaceFullPath') action.path_redirect = r.path.value;
  else if (r.path?.type === 'ReplacePrefixMatch') Object.assign(action, prefixRewrite(match, r.path.value));
  action.response_code = REDIRECT_CODE[r.statusCode ?? 302];
  return action;
}

function filterOf<T extends RouteFilter['type']>(filters: RouteFilter[], type: T): Extract<RouteFilter, { type: T }> | undefined {
  return filters.find((f): f is Extract<RouteFilter, { type: T }> => f.type === type);
}
