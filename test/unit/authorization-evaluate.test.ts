// The in-process AuthorizationPolicy evaluator (control-plane/model/authorization.ts),
// checked case by case against the Envoy RBAC the translator generates for the same
// policies: a small interpreter of that RBAC config decides each request too, and the
// two must agree, and agree with what the case expects (the e2e authorization cases
// among them).
import test from 'ava';
import { authorize, normalizePath, policiesFor, type AuthorizationRequest } from '../../control-plane/model/authorization.ts';
import { emptyModel, type AuthorizationPolicy, type AuthorizationRule, type MeshModel, type ProxyContext } from '../../control-plane/model/types.ts';
import { buildContext } from '../../control-plane/translate/context.ts';
import { inboundHttpFilters } from '../../control-plane/translate/authorization.ts';

const TD = 'tessera.local';
const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
const REVIEWS = id('default', 'reviews');
const PRODUCTPAGE = id('default', 'productpage');
const OTHER_NS = id('other', 'reviews');

const policy = (action: 'ALLOW' | 'DENY', rules: Partial<AuthorizationRule>[], name = `p-${action}`, targets = [{ service: 'ratings', namespace: 'default' }]): AuthorizationPolicy => ({
  name,
  namespace: 'default',
  targets,
  action,
  rules: rules.map((r) => ({ from: r.from ?? [], to: r.to ?? [], when: r.when ?? [] })),
});

const req = (method: string, path: string, principal?: string, headers: Record<string, string> = {}, port = 9080): AuthorizationRequest => ({ method, path, principal, headers, port });

const ALLOW_GET = policy('ALLOW', [{ to: [{ methods: ['GET'] }] }]);
const DENY_ADMIN = policy('DENY', [{ to: [{ paths: ['/admin*'] }] }]);
const ALLOW_REVIEWS = policy('ALLOW', [{ from: [{ serviceAccounts: [{ name: 'reviews', namespace: 'default' }] }] }]);

type Case = [what: string, policies: AuthorizationPolicy[], request: AuthorizationRequest, allowed: boolean];
const cases: Case[] = [
  ['no policy allows everything', [], req('POST', '/admin'), true],
  ['ALLOW GET: GET is allowed', [ALLOW_GET], req('GET', '/ok'), true],
  ['ALLOW GET: POST is denied', [ALLOW_GET], req('POST', '/ok'), false],
  ['ALLOW GET: HEAD is not GET', [ALLOW_GET], req('HEAD', '/ok'), false],
  ['DENY /admin*: GET /admin is denied', [DENY_ADMIN], req('GET', '/admin'), false],
  ['DENY /admin*: prefix* is a string prefix', [DENY_ADMIN], req('GET', '/administrator'), false],
  ['DENY /admin*: /ok/admin is allowed', [DENY_ADMIN], req('GET', '/ok/admin'), true],
  ['DENY /admin*: //admin is denied (merged slashes)', [DENY_ADMIN], req('GET', '//admin'), false],
  ['DENY /admin*: /ok/../admin is denied (dot segments)', [DENY_ADMIN], req('GET', '/ok/../admin'), false],
  ['DENY /admin*: /ok\\..\\admin is denied (backslashes)', [DENY_ADMIN], req('GET', '/ok\\..\\admin'), false],
  ['DENY /admin*: a query is no part of the path', [DENY_ADMIN], req('GET', '/ok?x=/admin'), true],
  ['DENY wins over ALLOW', [ALLOW_GET, DENY_ADMIN], req('GET', '/admin'), false],
  ['ALLOW and DENY: ALLOW still lets GET through', [ALLOW_GET, DENY_ADMIN], req('GET', '/ok'), true],
  ['an ALLOW with no rules allows nothing', [policy('ALLOW', [])], req('GET', '/'), false],
  ['a DENY with no rules denies nothing', [policy('DENY', [])], req('GET', '/'), true],
  ['ALLOW from a service account: that account is allowed', [ALLOW_REVIEWS], req('GET', '/', REVIEWS), true],
  ['ALLOW from a service account: another is denied', [ALLOW_REVIEWS], req('GET', '/', PRODUCTPAGE), false],
  ['ALLOW from a service account fails closed in plaintext', [ALLOW_REVIEWS], req('GET', '/'), false],
  ['ALLOW from a namespace: an identity of it', [policy('ALLOW', [{ from: [{ namespaces: ['default'] }] }])], req('GET', '/', PRODUCTPAGE), true],
  ['ALLOW from a namespace: an identity of another', [policy('ALLOW', [{ from: [{ namespaces: ['default'] }] }])], req('GET', '/', OTHER_NS), false],
  ['ALLOW from a namespace fails closed in plaintext', [policy('ALLOW', [{ from: [{ namespaces: ['default'] }] }])], req('GET', '/'), false],
  ['DENY notNamespaces: plaintext has no namespace, so it is denied', [policy('DENY', [{ from: [{ notNamespaces: ['default'] }] }])], req('GET', '/'), false],
  ['DENY notNamespaces: an identity of the namespace passes', [policy('DENY', [{ from: [{ notNamespaces: ['default'] }] }])], req('GET', '/', REVIEWS), true],
  ['ALLOW principals with a prefix', [policy('ALLOW', [{ from: [{ principals: [`spiffe://${TD}/ns/other/*`] }] }])], req('GET', '/', OTHER_NS), true],
  ['ALLOW principals with a prefix: another namespace', [policy('ALLOW', [{ from: [{ principals: [`spiffe://${TD}/ns/other/*`] }] }])], req('GET', '/', REVIEWS), false],
  ['ALLOW principals *: any identity', [policy('ALLOW', [{ from: [{ principals: ['*'] }] }])], req('GET', '/', REVIEWS), true],
  ['ALLOW principals *: not plaintext', [policy('ALLOW', [{ from: [{ principals: ['*'] }] }])], req('GET', '/'), false],
  ['ALLOW notPrincipals: another identity', [policy('ALLOW', [{ from: [{ notPrincipals: [PRODUCTPAGE] }] }])], req('GET', '/', REVIEWS), true],
  ['ALLOW notPrincipals: the one excluded', [policy('ALLOW', [{ from: [{ notPrincipals: [PRODUCTPAGE] }] }])], req('GET', '/', PRODUCTPAGE), false],
  ['from AND to: the right caller, the wrong path', [policy('ALLOW', [{ from: [{ principals: [REVIEWS] }], to: [{ paths: ['/ratings/*'] }] }])], req('GET', '/other', REVIEWS), false],
  ['from AND to: the right caller and path', [policy('ALLOW', [{ from: [{ principals: [REVIEWS] }], to: [{ paths: ['/ratings/*'] }] }])], req('GET', '/ratings/1', REVIEWS), true],
  ['two rules are OR', [policy('ALLOW', [{ from: [{ principals: [REVIEWS] }] }, { to: [{ methods: ['GET'] }] }])], req('GET', '/', PRODUCTPAGE), true],
  ['notMethods', [policy('ALLOW', [{ to: [{ notMethods: ['DELETE'] }] }])], req('DELETE', '/'), false],
  ['notPaths', [policy('DENY', [{ to: [{ notPaths: ['/public*'] }] }])], req('GET', '/public/a'), true],
  ['notPaths: outside', [policy('DENY', [{ to: [{ notPaths: ['/public*'] }] }])], req('GET', '/private'), false],
  ['a suffix path', [policy('DENY', [{ to: [{ paths: ['*.secret'] }] }])], req('GET', '/a/b.secret'), false],
  ['ports: the port named', [policy('ALLOW', [{ to: [{ ports: [9080] }] }])], req('GET', '/', undefined, {}, 9080), true],
  ['ports: another port', [policy('ALLOW', [{ to: [{ ports: [9080] }] }])], req('GET', '/', undefined, {}, 9081), false],
  ['a header value', [policy('ALLOW', [{ when: [{ header: 'x-team', values: ['ratings'] }] }])], req('GET', '/', undefined, { 'x-team': 'ratings' }), true],
  ['a header value: another value', [policy('ALLOW', [{ when: [{ header: 'x-team', values: ['ratings'] }] }])], req('GET', '/', undefined, { 'x-team': 'reviews' }), false],
  ['a header value: absent', [policy('ALLOW', [{ when: [{ header: 'x-team', values: ['ratings'] }] }])], req('GET', '/'), false],
  ['a header * is presence, even empty', [policy('ALLOW', [{ when: [{ header: 'x-team', values: ['*'] }] }])], req('GET', '/', undefined, { 'x-team': '' }), true],
  ['a header notValues', [policy('DENY', [{ when: [{ header: 'x-team', notValues: ['ratings'] }] }])], req('GET', '/', undefined, { 'x-team': 'ratings' }), true],
  ['a header notValues: absent header is not among them', [policy('DENY', [{ when: [{ header: 'x-team', notValues: ['ratings'] }] }])], req('GET', '/'), false],
  ['a namespace-wide policy applies', [policy('DENY', [{ to: [{ methods: ['POST'] }] }], 'ns', [])], req('POST', '/'), false],
  ['a policy of another Service does not apply', [policy('DENY', [{}], 'db', [{ service: 'db', namespace: 'default' }])], req('GET', '/'), true],
];

// ---- a small interpreter of the generated Envoy RBAC (HTTP filter) ----

type Json = any;

function stringMatch(m: Json, value: string): boolean {
  if ('exact' in m) return value === m.exact;
  if ('prefix' in m) return value.startsWith(m.prefix);
  if ('suffix' in m) return value.endsWith(m.suffix);
  if ('safe_regex' in m) return new RegExp(`^(?:${m.safe_regex.regex})$`).test(value);
  throw new Error(`string matcher ${JSON.stringify(m)} not interpreted`);
}

/** What the RBAC filter sees: the path after the connection manager normalized it. */
interface Seen {
  method: string;
  path: string;
  principal?: string;
  headers: Record<string, string>;
  port?: number;
}

function permission(p: Json, r: Seen): boolean {
  if (p.any) return true;
  if (p.and_rules) return p.and_rules.rules.every((x: Json) => permission(x, r));
  if (p.or_rules) return p.or_rules.rules.some((x: Json) => permission(x, r));
  if (p.not_rule) return !permission(p.not_rule, r);
  if (p.url_path) return stringMatch(p.url_path.path, r.path.split('?')[0]);
  if (p.destination_port !== undefined) return r.port === p.destination_port;
  if (p.header) {
    const value = p.header.name === ':method' ? r.method : r.headers[p.header.name];
    if (p.header.present_match) return value !== undefined;
    return value !== undefined && stringMatch(p.header.string_match, value);
  }
  throw new Error(`permission ${JSON.stringify(p)} not interpreted`);
}

function principal(p: Json, r: Seen): boolean {
  if (p.any) return true;
  if (p.and_ids) return p.and_ids.ids.every((x: Json) => principal(x, r));
  if (p.or_ids) return p.or_ids.ids.some((x: Json) => principal(x, r));
  if (p.not_id) return !principal(p.not_id, r);
  if (p.authenticated) return r.principal !== undefined && stringMatch(p.authenticated.principal_name, r.principal);
  throw new Error(`principal ${JSON.stringify(p)} not interpreted`);
}

function rbacAllows(model: MeshModel, r: Seen): boolean {
  const proxy: ProxyContext = {
    kind: 'sidecar',
    service: 'ratings',
    namespace: 'default',
    outbound: { address: '127.0.0.1', port: 15001 },
    inbound: { address: '127.0.0.1', port: 9080, appPort: 8080, appAddress: '127.0.0.1' },
  };
  for (const filter of inboundHttpFilters(buildContext(model, [], proxy))) {
    const rules = (filter.typed_config as Json).rules;
    const matched = Object.values(rules.policies as Record<string, Json>).some((p) => p.permissions.some((x: Json) => permission(x, r)) && p.principals.some((x: Json) => principal(x, r)));
    if (rules.action === 'DENY' && matched) return false;
    if (rules.action === 'ALLOW' && !matched) return false;
  }
  return true;
}

for (const [what, policies, request, allowed] of cases) {
  test(`${what}: the evaluator and the generated RBAC both say ${allowed ? 'allow' : 'deny'}`, (t) => {
    const model: MeshModel = { ...emptyModel(), authorizationPolicies: policies };
    const verdict = authorize(policiesFor(model, 'ratings', 'default'), request, TD);
    t.is(verdict.allowed, allowed, 'evaluator');
    const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, String(v)]));
    t.is(rbacAllows(model, { ...request, headers, path: normalizePath(request.path) }), allowed, 'RBAC');
  });
}

test('paths are normalized as the inbound sidecar does (normalize_path, merge_slashes), query left out', (t) => {
  t.is(normalizePath('//admin'), '/admin');
  t.is(normalizePath('/ok/../admin'), '/admin');
  t.is(normalizePath('/a/./b/'), '/a/b/');
  t.is(normalizePath('/a/%2e%2E/admin'), '/admin', 'an escaped dot is a dot');
  t.is(normalizePath('/%61dmin?x=1'), '/admin', 'unreserved characters are decoded');
  t.is(normalizePath('/a%2fb'), '/a%2Fb', 'an escaped slash stays escaped');
  t.is(normalizePath('/../../x'), '/x');
  t.is(normalizePath('/a/..'), '/');
  t.is(normalizePath('/ok\\..\\admin'), '/admin', 'a backslash is a slash to Envoy (Chromium\'s canonicalizer)');
});

test('a DENY verdict names the policy; a missing ALLOW match names none', (t) => {
  t.deepEqual(authorize([DENY_ADMIN], req('GET', '/admin'), TD), { allowed: false, action: 'DENY', policy: 'default/p-DENY' });
  t.deepEqual(authorize([ALLOW_GET], req('POST', '/'), TD), { allowed: false, action: 'ALLOW' });
});
