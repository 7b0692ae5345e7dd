// AuthorizationPolicy -> Envoy RBAC on the sidecar's inbound side, in Istio's order:
// a DENY filter first (any matching rule: 403), then an ALLOW filter present as soon
// as one ALLOW policy applies (no matching rule: 403). With no policy, no filter.
// Peer identities are the URI SAN of the client certificate (`authenticated`), which
// only exists over mTLS: a principal rule never matches a plaintext request, so an
// ALLOW restricted to principals fails closed.
import {
  DEFAULT_TRUST_DOMAIN,
  type AuthorizationCondition,
  type AuthorizationOperation,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type AuthorizationSource,
  namespaceSpiffePrefix,
  workloadSpiffeId,
} from '../model/types.ts';
import { policiesFor } from '../model/authorization.ts';
import { parseWildcard } from '../model/wildcard.ts';
import { EXTENSION } from '../xds/resources/type-urls.ts';
import type { TranslateContext } from './context.ts';
import {
  typedAny,
  type HeaderMatcher,
  type HttpConnectionManager,
  type HttpFilter,
  type HttpRbac,
  type NetworkFilter,
  type NetworkRbac,
  type RbacPermission,
  type RbacPolicy,
  type RbacPrincipal,
  type RbacRules,
  type StringMatcher,
} from './envoy-types.ts';
import { FILTER, RBAC_STAT_PREFIX, rbacPolicyName } from './names.ts';

type Action = AuthorizationPolicy['action'];

/** The policies the sidecar's inbound side enforces: those naming its service, and
 *  those of its namespace that name no target (namespace-wide, as Istio). */
export function applicablePolicies(ctx: TranslateContext): AuthorizationPolicy[] {
  if (ctx.proxy.kind !== 'sidecar') return [];
  return policiesFor(ctx.model, ctx.proxy.service, ctx.proxy.namespace);
}

/** HTTP filters to put before the router of an inbound HTTP connection manager. */
export function inboundHttpFilters(ctx: TranslateContext): HttpFilter[] {
  return rbacRules(ctx, 'http').map(({ action, rules }) => {
    const config: HttpRbac = { rules, rules_stat_prefix: RBAC_STAT_PREFIX[action] };
    return { name: `${FILTER.httpRbac}.${action.toLowerCase()}`, typed_config: typedAny(EXTENSION.httpRbac, config) };
  });
}

/** Network filters to put before tcp_proxy where inbound connections are not HTTP
 *  (the capture listener's passthrough chain), so TCP cannot bypass a policy. */
export function inboundNetworkFilters(ctx: TranslateContext, statPrefix: string): NetworkFilter[] {
  return rbacRules(ctx, 'tcp').map(({ action, rules }) => {
    // Network RBAC stats are `<stat_prefix>rbac.denied`: the prefix brings its own dot.
    const config: NetworkRbac = { rules, stat_prefix: `${statPrefix}.${RBAC_STAT_PREFIX[action]}.` };
    return { name: `${FILTER.networkRbac}.${action.toLowerCase()}`, typed_config: typedAny(EXTENSION.networkRbac, config) };
  });
}

/** Istio normalizes paths before authorization, so `/ok/../admin` or `//admin` cannot
 *  slip past a rule on `/admin*`. Set only where a policy applies, so the app sees its
 *  paths untouched otherwise. */
export function inboundPathNormalization(ctx: TranslateContext): Pick<HttpConnectionManager, 'normalize_path' | 'merge_slashes'> {
  return applicablePolicies(ctx).length > 0 ? { normalize_path: { value: true }, merge_slashes: true } : {};
}

function rbacRules(ctx: TranslateContext, protocol: 'http' | 'tcp'): { action: Action; rules: RbacRules }[] {
  const policies = applicablePolicies(ctx);
  const trustDomain = ctx.model.meshConfig?.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const out: { action: Action; rules: RbacRules }[] = [];
  for (const action of ['DENY', 'ALLOW'] as const) {
    const mine = policies.filter((p) => p.action === action);
    // An ALLOW filter with no policy map denies everything: exactly "an ALLOW policy
    // with no matching rule". A DENY filter with nothing in it would be a no-op.
    if (mine.length === 0) continue;
    const entries: [string, RbacPolicy][] = [];
    for (const p of mine) {
      p.rules.forEach((rule, i) => {
        const r = protocol === 'tcp' ? tcpRule(rule, action) : rule;
        if (r) entries.push([rbacPolicyName(p.namespace, p.name, i), rbacPolicy(r, trustDomain)]);
      });
    }
    if (action === 'DENY' && entries.length === 0) continue;
    out.push({ action, rules: { action, policies: Object.fromEntries(entries) } });
  }
  return out;
}

/** A TCP connection carries no method, path or header. Istio's answer, kept here: an
 *  ALLOW rule that needs them never matches TCP; a DENY rule drops them, so it denies
 *  more rather than less. */
function tcpRule(rule: AuthorizationRule, action: Action): AuthorizationRule | undefined {
  const httpOnly = (op: AuthorizationOperation) => Boolean(op.methods || op.notMethods || op.paths || op.notPaths);
  if (action === 'ALLOW') return rule.when.length > 0 || rule.to.some(httpOnly) ? undefined : rule;
  const to = rule.to.map(({ ports, notPorts }) => ({ ports, notPorts }));
  // An operation left with nothing matches any connection, so the rule's `to` does too.
  return { from: rule.from, to: to.some((op) => !op.ports && !op.notPorts) ? [] : to, when: [] };
}

function rbacPolicy(rule: AuthorizationRule, trustDomain: string): RbacPolicy {
  const permission = allOf([
    ...(rule.to.length > 0 ? [anyOf(rule.to.map(operationPermission))] : []),
    ...rule.when.map(conditionPermission),
  ]);
  const principal = rule.from.length > 0 ? anyId(rule.from.map((s) => sourcePrincipal(s, trustDomain))) : { any: true };
  return { permissions: [permission], principals: [principal] };
}

// ---- permissions: what the request asks for ----

function operationPermission(op: AuthorizationOperation): RbacPermission {
  const parts: RbacPermission[] = [];
  const add = (rules: RbacPermission[] | undefined, negate = false) => {
    if (rules) parts.push(negate ? { not_rule: anyOf(rules) } : anyOf(rules));
  };
  add(op.methods?.map(methodPermission));
  add(op.notMethods?.map(methodPermission), true);
  add(op.paths?.map(pathPermission));
  add(op.notPaths?.map(pathPermission), true);
  add(op.ports?.map(portPermission));
  add(op.notPorts?.map(portPermission), true);
  return allOf(parts);
}

const methodPermission = (method: string): RbacPermission => ({ header: { name: ':method', string_match: { exact: method } } });
/** url_path leaves out the query string, as Istio's paths do. */
const pathPermission = (path: string): RbacPermission => ({ url_path: { path: stringMatcher(path) } });
const portPermission = (port: number): RbacPermission => ({ destination_port: port });

function conditionPermission(c: AuthorizationCondition): RbacPermission {
  const parts: RbacPermission[] = [];
  if (c.values) parts.push(anyOf(c.values.map((v) => ({ header: headerMatcher(c.header, v) }))));
  if (c.notValues) parts.push({ not_rule: anyOf(c.notValues.map((v) => ({ header: headerMatcher(c.header, v) }))) });
  return allOf(parts);
}

function headerMatcher(name: string, value: string): HeaderMatcher {
  return parseWildcard(value)?.kind === 'any' ? { name, present_match: true } : { name, string_match: stringMatcher(value) };
}

// ---- principals: who the peer is ----

function sourcePrincipal(s: AuthorizationSource, trustDomain: string): RbacPrincipal {
  const parts: RbacPrincipal[] = [];
  const add = (ids: RbacPrincipal[] | undefined, negate = false) => {
    if (!ids) return;
    parts.push(negate ? { not_id: anyId(ids) } : anyId(ids));
  };
  const peer = (name: StringMatcher): RbacPrincipal => ({ authenticated: { principal_name: name } });
  const accounts = (list?: { name: string; namespace: string }[]) => list?.map((a) => peer({ exact: workloadSpiffeId(trustDomain, a.namespace, a.name) }));
  // A namespace is a prefix of the SPIFFE IDs in it.
  const namespaces = (list?: string[]) => list?.map((ns) => peer({ prefix: namespaceSpiffePrefix(trustDomain, ns) }));
  const principals = (list?: string[]) => list?.map((p) => peer(stringMatcher(p)));
  add(principals(s.principals));
  add(principals(s.notPrincipals), true);
  add(accounts(s.serviceAccounts));
  add(accounts(s.notServiceAccounts), true);
  add(namespaces(s.namespaces));
  add(namespaces(s.notNamespaces), true);
  return allId(parts);
}

// ---- helpers: Istio patterns and sets with one member unwrapped ----

/** `*` matches any non-empty value; the config loader has refused other `*` uses. */
function stringMatcher(pattern: string): StringMatcher {
  const w = parseWildcard(pattern) ?? { kind: 'exact', value: pattern };
  switch (w.kind) {
    case 'any':
      return { safe_regex: { regex: '.+' } };
    case 'exact':
      return { exact: w.value };
    case 'prefix':
      return { prefix: w.value };
    case 'suffix':
      return { suffix: w.value };
  }
}

const anyOf = (rules: RbacPermission[]): RbacPermission => (rules.length === 1 ? rules[0] : { or_rules: { rules } });
const allOf = (rules: RbacPermission[]): RbacPermission =>
  rules.length === 0 ? { any: true } : rules.length === 1 ? rules[0] : { and_rules: { rules } };
const anyId = (ids: RbacPrincipal[]): RbacPrincipal => (ids.length === 1 ? ids[0] : { or_ids: { ids } });
const allId = (ids: RbacPrincipal[]): RbacPrincipal => (ids.length === 0 ? { any: true } : ids.length === 1 ? ids[0] : { and_ids: { ids } });
