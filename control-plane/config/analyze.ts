// Warnings about a valid config that a user would want before applying it: things
// that load fine but probably do not do what was meant. Pure: the model (and, for a
// running control plane, the instances it knows with their health) in, findings out.
import { effectiveMtlsMode, serviceKey, type Endpoint, type MeshModel, type RouteMatch, type SourceRef } from '../model/types.ts';

/** Set by the sidecar agent on instances whose sidecar has a mesh certificate. */
const TLS_MODE_LABEL = 'tessera.dev/tls-mode';

export interface Finding {
  file: string;
  line: number;
  /** A stable code, for filtering. */
  code: 'no-instances' | 'no-healthy-instances' | 'zero-weight' | 'shadowed-match' | 'policy-without-instances' | 'strict-without-sidecar' | 'unknown-service-account';
  message: string;
}

export interface AnalyzeInput {
  model: MeshModel;
  /** Registered instances with their health (running config); absent for a dir. */
  registry?: Endpoint[];
}

export function analyze({ model, registry }: AnalyzeInput): Finding[] {
  const findings: Finding[] = [];
  const at = (source: SourceRef | undefined) => ({ file: source?.file ?? '', line: source?.line ?? 0 });
  const instances = new Map<string, Endpoint[]>();
  for (const e of [...model.endpoints, ...(registry ?? [])]) {
    const key = serviceKey(e.service, e.namespace);
    instances.set(key, [...(instances.get(key) ?? []), e]);
  }
  const healthOf = (service: string, namespace: string): 'none' | 'unhealthy' | 'ok' => {
    const list = instances.get(serviceKey(service, namespace)) ?? [];
    if (list.length === 0) return 'none';
    return list.some((e) => e.health === 'healthy') ? 'ok' : 'unhealthy';
  };
  const noInstances = (service: string, namespace: string): Finding['code'] | undefined => {
    const h = healthOf(service, namespace);
    if (h === 'ok') return undefined;
    return h === 'none' ? 'no-instances' : 'no-healthy-instances';
  };
  const describe = (code: Finding['code']) =>
    code === 'no-instances'
      ? registry
        ? 'has no instances: requests to it fail with 503'
        : 'has no instances in any EndpointSlice: requests to it fail with 503 until instances register'
      : 'has no healthy instance: requests to it fail with 503';

  for (const route of model.routes) {
    const where = `${route.kind} ${route.namespace}/${route.name}`;
    route.rules.forEach((rule, ruleIndex) => {
      const weighted = rule.backends.filter((b) => b.weight > 0);
      for (const b of rule.backends) {
        if (b.weight === 0 && weighted.length > 0) {
          findings.push({ ...at(route.source), code: 'zero-weight', message: `${where} rule ${ruleIndex + 1}: backend ${b.service} has weight 0 and gets no traffic` });
        } else if (b.weight > 0) {
          const code = noInstances(b.service, b.namespace);
          if (code) findings.push({ ...at(route.source), code, message: `${where} rule ${ruleIndex + 1}: backend ${b.service} ${describe(code)}` });
        }
      }
    });
  }
  findings.push(...shadowedMatches(model));
  for (const policy of model.policies) {
    const targets = policy.targets.filter((t) => healthOf(t.service, t.namespace) !== 'none');
    if (policy.targets.length > 0 && targets.length === 0) {
      findings.push({
        ...at(policy.source),
        code: 'policy-without-instances',
        message: `TrafficPolicy ${policy.namespace}/${policy.name} targets only services with no instances (${policy.targets.map((t) => t.service).join(', ')})`,
      });
    }
  }
  // STRICT protects only instances whose sidecar has a certificate: the others are
  // called in plaintext and take plaintext from anyone.
  for (const service of model.services) {
    if (effectiveMtlsMode(model, service.name, service.namespace) !== 'STRICT') continue;
    const bare = (instances.get(serviceKey(service.name, service.namespace)) ?? []).filter((e) => e.labels[TLS_MODE_LABEL] !== 'mutual');
    if (bare.length === 0) continue;
    const names = bare.slice(0, 3).map((e) => `${e.id} (${e.address}:${e.port}, ${e.source === 'file' ? 'EndpointSlice' : 'registered'})`);
    findings.push({
      ...at(service.source),
      code: 'strict-without-sidecar',
      message: `Service ${service.namespace}/${service.name} is STRICT mTLS, but ${bare.length} of its instances have no sidecar with a mesh certificate: ${names.join(', ')}${bare.length > 3 ? ', …' : ''}; callers reach them in plaintext and they accept plaintext from anyone`,
    });
  }
  findings.push(...unknownServiceAccounts(model, registry));
  return findings.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
}

/** Two matches on the same service port with the same conditions: Gateway API
 *  precedence gives every request to the first (oldest route, then rule order), so
 *  the other never matches. */
function shadowedMatches(model: MeshModel): Finding[] {
  const findings: Finding[] = [];
  const seen = new Map<string, string>();
  for (const route of model.routes) {
    route.rules.forEach((rule, ruleIndex) => {
      const matches: (RouteMatch | undefined)[] = rule.matches.length > 0 ? rule.matches : [undefined];
      for (const match of matches) {
        for (const parent of route.parents) {
          const key = JSON.stringify([parent.service, parent.namespace, parent.port ?? '*', conditions(match)]);
          const here = `${route.kind} ${route.namespace}/${route.name} rule ${ruleIndex + 1}`;
          const first = seen.get(key);
          if (first && first !== here) {
            findings.push({
              file: route.source?.file ?? '',
              line: route.source?.line ?? 0,
              code: 'shadowed-match',
              message: `${here} never matches: ${first} has the same match on ${parent.service} and comes first`,
            });
          } else if (!first) seen.set(key, here);
        }
      }
    });
  }
  return findings;
}

function conditions(match: RouteMatch | undefined) {
  const path = match?.path ?? { type: 'PathPrefix', value: '/' };
  const prefix = path.type === 'PathPrefix' ? path.value.replace(/\/+$/, '') || '/' : path.value;
  const sorted = <T extends { name: string; value: string; type: string }>(xs: T[]) =>
    [...xs].map((x) => [x.name.toLowerCase(), x.type, x.value]).sort((a, b) => (a.join() < b.join() ? -1 : 1));
  return [path.type, prefix, match?.method ?? '', sorted(match?.headers ?? []), sorted(match?.queryParams ?? [])];
}

/** An ALLOW rule naming a service account that no known workload runs as lets
 *  nobody in, probably a typo. Known: the Services (a plain host's service
 *  account is its service name) and, for a running mesh, the registry's services. */
function unknownServiceAccounts(model: MeshModel, registry: Endpoint[] | undefined): Finding[] {
  const known = new Set([
    ...model.services.flatMap((s) => (s.serviceAccounts ?? [s.name]).map((sa) => `${s.namespace}/${sa}`)),
    ...(registry ?? []).map((e) => `${e.namespace}/${e.service}`),
  ]);
  const findings: Finding[] = [];
  for (const policy of model.authorizationPolicies ?? []) {
    if (policy.action !== 'ALLOW') continue;
    const accounts = policy.rules.flatMap((r) => r.from.flatMap((f) => f.serviceAccounts ?? []));
    for (const account of new Set(accounts.map((a) => `${a.namespace}/${a.name}`))) {
      if (known.has(account)) continue;
      findings.push({
        file: policy.source?.file ?? '',
        line: policy.source?.line ?? 0,
        code: 'unknown-service-account',
        message:
          `AuthorizationPolicy ${policy.namespace}/${policy.name} allows service account ${account}, which no known workload runs as ` +
          '(a plain host runs as its service name; on Kubernetes, check the pods\' serviceAccountName)',
      });
    }
  }
  return findings;
}
