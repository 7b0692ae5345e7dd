// AuthorizationPolicy evaluated in process, for whoever must decide as a sidecar's
// inbound RBAC would before acting on a caller's behalf (the ParallelRun comparator,
// which would otherwise be a confused deputy). Same semantics as the RBAC that
// translate/authorization.ts generates, and checked against it by a table test
// (test/unit/authorization-evaluate.test.ts): DENY first (any matching rule denies),
// then ALLOW (as soon as one ALLOW policy applies, some rule must match); no policy
// allows. A peer identity exists only over mTLS: a principal, service account or
// namespace never matches a plaintext request, so their negations always do.
// Pure: policies and a request in, a verdict out.
import {
  namespaceSpiffePrefix,
  workloadSpiffeId,
  type AuthorizationCondition,
  type AuthorizationOperation,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type AuthorizationSource,
  type MeshModel,
} from './types.ts';
import { parseWildcard } from './wildcard.ts';

/** An HTTP request as a sidecar's inbound side sees it. */
export interface AuthorizationRequest {
  /** The SPIFFE ID of the peer's client certificate; absent in plaintext. */
  principal?: string;
  method: string;
  /** The request path as sent (a query is ignored; normalized here as the sidecar does). */
  path: string;
  /** Request headers, names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  /** The instance port the request is received on. */
  port?: number;
}

export type AuthorizationVerdict =
  | { allowed: true }
  /** `policy` is `namespace/name` of the DENY that matched; absent when no ALLOW rule matched. */
  | { allowed: false; action: 'DENY' | 'ALLOW'; policy?: string };

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The policies a Service's sidecars enforce: those naming the Service, and those of
 *  its namespace that name no target (namespace-wide, as Istio). */
export function policiesFor(model: Pick<MeshModel, 'authorizationPolicies'>, service: string | undefined, namespace: string): AuthorizationPolicy[] {
  return (model.authorizationPolicies ?? [])
    .filter((p) => (p.targets.length === 0 ? p.namespace === namespace : p.targets.some((t) => t.service === service && t.namespace === namespace)))
    .sort((a, b) => compare(a.namespace, b.namespace) || compare(a.name, b.name));
}

/** Whether the sidecar of a Service with these policies lets an HTTP request in. */
export function authorize(policies: AuthorizationPolicy[], request: AuthorizationRequest, trustDomain: string): AuthorizationVerdict {
  const req = { ...request, path: normalizePath(request.path) };
  for (const p of policies) {
    if (p.action === 'DENY' && p.rules.some((r) => ruleMatches(r, req, trustDomain))) return { allowed: false, action: 'DENY', policy: `${p.namespace}/${p.name}` };
  }
  const allows = policies.filter((p) => p.action === 'ALLOW');
  if (allows.length > 0 && !allows.some((p) => p.rules.some((r) => ruleMatches(r, req, trustDomain)))) return { allowed: false, action: 'ALLOW' };
  return { allowed: true };
}

/** The path the inbound RBAC matches (`url_path` after Envoy's `normalize_path` and
 *  `merge_slashes`): no query or fragment, escapes of unreserved characters decoded
 *  (other escapes upper-cased), backslashes as slashes, dot segments removed, runs of
 *  slashes merged. */
export function normalizePath(raw: string): string {
  let path = raw.split(/[?#]/, 1)[0] || '/';
  path = path.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => {
    const c = String.fromCharCode(Number.parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${hex.toUpperCase()}`;
  });
  // Envoy's canonicalizer (Chromium's) treats a backslash as a slash.
  path = path.replaceAll('\\', '/');
  if (!path.startsWith('/')) path = `/${path}`;
  // RFC 3986 5.2.4, on segments (an empty segment, from `//`, is kept until merged).
  const out: string[] = [];
  const segments = path.slice(1).split('/');
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(s);
  });
  return `/${out.join('/')}`.replace(/\/{2,}/g, '/');
}

type Request = AuthorizationRequest;

function ruleMatches(rule: AuthorizationRule, req: Request, trustDomain: string): boolean {
  return (
    (rule.from.length === 0 || rule.from.some((s) => sourceMatches(s, req.principal, trustDomain))) &&
    (rule.to.length === 0 || rule.to.some((op) => operationMatches(op, req))) &&
    rule.when.every((c) => conditionMatches(c, req))
  );
}

/** Every field present must match (a `not` field: none of its values). */
const all = (checks: (boolean | undefined)[]) => checks.every((c) => c !== false);
const some = <T>(list: T[] | undefined, match: (v: T) => boolean): boolean | undefined => (list ? list.some(match) : undefined);
const none = <T>(list: T[] | undefined, match: (v: T) => boolean): boolean | undefined => (list ? !list.some(match) : undefined);

function sourceMatches(s: AuthorizationSource, principal: string | undefined, trustDomain: string): boolean {
  // No certificate: no identity, so a positive match is false and a negative one true.
  const peer = (test: (id: string) => boolean) => principal !== undefined && test(principal);
  const isPrincipal = (p: string) => peer((id) => patternMatches(p, id, true));
  const isAccount = (a: { name: string; namespace: string }) => peer((id) => id === workloadSpiffeId(trustDomain, a.namespace, a.name));
  const inNamespace = (ns: string) => peer((id) => id.startsWith(namespaceSpiffePrefix(trustDomain, ns)));
  return all([
    some(s.principals, isPrincipal),
    none(s.notPrincipals, isPrincipal),
    some(s.serviceAccounts, isAccount),
    none(s.notServiceAccounts, isAccount),
    some(s.namespaces, inNamespace),
    none(s.notNamespaces, inNamespace),
  ]);
}

function operationMatches(op: AuthorizationOperation, req: Request): boolean {
  const isMethod = (m: string) => m === req.method;
  const isPath = (p: string) => patternMatches(p, req.path, true);
  const isPort = (p: number) => p === req.port;
  return all([
    some(op.methods, isMethod),
    none(op.notMethods, isMethod),
    some(op.paths, isPath),
    none(op.notPaths, isPath),
    some(op.ports, isPort),
    none(op.notPorts, isPort),
  ]);
}

function conditionMatches(c: AuthorizationCondition, req: Request): boolean {
  const raw = req.headers[c.header.toLowerCase()];
  // Envoy matches repeated headers joined by a comma.
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  // `*` in a header condition is "present" (even empty), as the RBAC header matcher.
  const is = (v: string) => value !== undefined && patternMatches(v, value, false);
  return all([some(c.values, is), none(c.notValues, is)]);
}

/** Istio's patterns: `*` any value (non-empty where `nonEmptyAny`), `prefix*`, `*suffix`, exact. */
function patternMatches(pattern: string, value: string, nonEmptyAny: boolean): boolean {
  const w = parseWildcard(pattern) ?? { kind: 'exact', value: pattern };
  switch (w.kind) {
    case 'any':
      return nonEmptyAny ? value.length > 0 : true;
    case 'exact':
      return value === w.value;
    case 'prefix':
      return value.startsWith(w.value);
    case 'suffix':
      return value.endsWith(w.value);
  }
}
