// AuthorizationPolicy documents -> model. The schema has closed every object already;
// what is checked here is what a schema cannot say: the spelling of patterns, service
// account names, `when` keys. Checks needing other documents are in checks-authorization.ts.
import type {
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationPolicy,
  AuthorizationRule,
  AuthorizationSource,
} from '../model/types.ts';
import { parseWildcard } from '../model/wildcard.ts';
import type { ConvertContext } from './convert.ts';

// biome-ignore lint/suspicious/noExplicitAny: documents are checked against their JSON schema (ajv) before conversion
type Doc = Record<string, any>;
type At = (string | number)[];

const DNS_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SERVICE_ACCOUNT = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const WHEN_KEY = /^request\.headers\[(.*)\]$/;

export function convertAuthorizationPolicy(doc: Doc, ctx: ConvertContext): void {
  const namespace = (doc.metadata.namespace as string | undefined) ?? 'default';
  const name = `AuthorizationPolicy ${namespace}/${doc.metadata.name}`;
  const spec = doc.spec as Doc;
  const targets = ((spec.targetRefs ?? []) as Doc[]).flatMap((t, i) => {
    const at = ['spec', 'targetRefs', i];
    // A policy in one namespace must not loosen or tighten another namespace's workloads.
    if (t.namespace !== undefined && t.namespace !== namespace) {
      ctx.error([...at, 'namespace'], `${name}: targetRefs must name Services in the policy's own namespace (${namespace}), not ${t.namespace}`);
      return [];
    }
    ctx.refs.push({ from: `${name}: targetRef`, service: t.name, namespace, file: ctx.file, ...ctx.locate([...at, 'name']) });
    return [{ service: t.name as string, namespace }];
  });
  const rules = ((spec.rules ?? []) as Doc[]).map((r, ri) => convertRule(r, ctx, name, namespace, ['spec', 'rules', ri]));
  const policy: AuthorizationPolicy = {
    name: doc.metadata.name,
    namespace,
    targets,
    action: spec.action ?? 'ALLOW',
    rules,
    source: { file: ctx.file, line: ctx.locate(['metadata', 'name']).line },
  };
  (ctx.model.authorizationPolicies ??= []).push(policy);
}

function convertRule(r: Doc, ctx: ConvertContext, name: string, namespace: string, at: At): AuthorizationRule {
  const from = ((r.from ?? []) as Doc[]).map((f, i) => convertSource(f, ctx, name, namespace, [...at, 'from', i]));
  const to = ((r.to ?? []) as Doc[]).map((o, i) => convertOperation(o, ctx, name, [...at, 'to', i]));
  const when = ((r.when ?? []) as Doc[]).flatMap((w, i) => convertCondition(w, ctx, name, [...at, 'when', i]));
  return { from, to, when };
}

function convertSource(f: Doc, ctx: ConvertContext, name: string, namespace: string, at: At): AuthorizationSource {
  if (Object.keys(f).length === 0) ctx.error(at, `${name}: a from entry needs at least one of principals, serviceAccounts, namespaces (or their not forms)`);
  const source: AuthorizationSource = {};
  for (const field of ['principals', 'notPrincipals'] as const) {
    if (!f[field]) continue;
    (f[field] as string[]).forEach((p, i) => {
      const pattern = parseWildcard(p);
      if (!pattern) ctx.error([...at, field, i], `${name}: principal ${JSON.stringify(p)} puts * in the middle; use *, prefix* or *suffix`);
      // Peer principals are SPIFFE URIs: an exact or prefix pattern without the scheme never matches.
      else if ((pattern.kind === 'exact' || pattern.kind === 'prefix') && !p.startsWith('spiffe://') && !'spiffe://'.startsWith(pattern.value)) {
        ctx.error([...at, field, i], `${name}: principal ${JSON.stringify(p)} is not a SPIFFE ID; write spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT, or use serviceAccounts`);
      }
    });
    source[field] = f[field];
  }
  for (const field of ['serviceAccounts', 'notServiceAccounts'] as const) {
    if (!f[field]) continue;
    source[field] = (f[field] as string[]).map((sa, i) => {
      const [ns, account] = sa.includes('/') ? sa.split('/', 2) : [namespace, sa];
      if (sa.split('/').length > 2 || !DNS_LABEL.test(ns) || !SERVICE_ACCOUNT.test(account)) {
        ctx.error([...at, field, i], `${name}: service account ${JSON.stringify(sa)} must be NAME (in the policy's namespace) or NAMESPACE/NAME`);
      }
      return { name: account, namespace: ns };
    });
  }
  if (f.namespaces) source.namespaces = f.namespaces;
  if (f.notNamespaces) source.notNamespaces = f.notNamespaces;
  return source;
}

function convertOperation(o: Doc, ctx: ConvertContext, name: string, at: At): AuthorizationOperation {
  if (Object.keys(o).length === 0) ctx.error(at, `${name}: a to entry needs at least one of methods, paths, ports (or their not forms)`);
  const operation: AuthorizationOperation = { source: { file: ctx.file, line: ctx.locate(at).line } };
  for (const field of ['paths', 'notPaths'] as const) {
    if (!o[field]) continue;
    (o[field] as string[]).forEach((p, i) => {
      const pattern = parseWildcard(p);
      if (!pattern) ctx.error([...at, field, i], `${name}: path ${JSON.stringify(p)} puts * in the middle; use *, /prefix*, *suffix or an exact path`);
      else if ((pattern.kind === 'exact' || pattern.kind === 'prefix') && !p.startsWith('/')) {
        ctx.error([...at, field, i], `${name}: path ${JSON.stringify(p)} must start with /`);
      }
    });
    operation[field] = o[field];
  }
  for (const field of ['methods', 'notMethods', 'ports', 'notPorts'] as const) if (o[field]) operation[field] = o[field];
  return operation;
}

function convertCondition(w: Doc, ctx: ConvertContext, name: string, at: At): AuthorizationCondition[] {
  const header = WHEN_KEY.exec(w.key)?.[1];
  if (header === undefined || !HEADER_NAME.test(header)) {
    ctx.error([...at, 'key'], `${name}: when key ${JSON.stringify(w.key)} is not supported; the supported key is request.headers[NAME]`);
    return [];
  }
  if (!w.values && !w.notValues) {
    ctx.error(at, `${name}: when ${w.key} needs values or notValues`);
    return [];
  }
  for (const field of ['values', 'notValues'] as const) {
    ((w[field] ?? []) as string[]).forEach((v, i) => {
      if (!parseWildcard(v)) ctx.error([...at, field, i], `${name}: value ${JSON.stringify(v)} puts * in the middle; use *, prefix*, *suffix or an exact value`);
    });
  }
  const condition: AuthorizationCondition = { header: header.toLowerCase(), source: { file: ctx.file, line: ctx.locate(at).line } };
  if (w.values) condition.values = w.values;
  if (w.notValues) condition.notValues = w.notValues;
  return [condition];
}
