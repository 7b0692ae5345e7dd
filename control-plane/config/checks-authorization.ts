// AuthorizationPolicy checks that need the Services: a policy the sidecars cannot
// enforce as written is refused, never half-enforced. Unknown targetRefs are reported
// with the other references (checks.ts).
import type { AuthorizationPolicy, MeshModel, MeshService, SourceRef } from '../model/types.ts';
import type { ConfigError } from './load.ts';

export function checkAuthorizationPolicies(model: MeshModel, errors: ConfigError[]): void {
  const policies = model.authorizationPolicies ?? [];
  const seen = new Map<string, SourceRef | undefined>();
  for (const p of policies) {
    const key = `${p.namespace}/${p.name}`;
    if (seen.has(key)) {
      const first = seen.get(key);
      errors.push({ ...at(p.source), message: `AuthorizationPolicy ${key} is declared twice (first at ${first?.file}:${first?.line})` });
    } else seen.set(key, p.source);
  }
  const byKey = new Map(model.services.map((s) => [`${s.namespace}/${s.name}`, s]));
  for (const p of policies) {
    // Namespace-wide policies: the namespace's declared Services (registry-only ones
    // carry no appProtocol and are proxied as HTTP).
    const targets =
      p.targets.length > 0
        ? p.targets.flatMap((t) => byKey.get(`${t.namespace}/${t.service}`) ?? [])
        : model.services.filter((s) => s.namespace === p.namespace);
    checkPorts(p, targets, p.targets.length > 0, errors);
  }
}

const at = (source?: SourceRef) => ({ file: source?.file ?? '', line: source?.line ?? 0 });

/** Instance ports (targetPort): where a request reaches the sidecar, what
 *  Envoy's destination_port sees. */
function instancePorts(services: MeshService[]) {
  return services.flatMap((s) => s.ports.map((p) => ({ service: s, port: p })));
}

function checkPorts(p: AuthorizationPolicy, targets: MeshService[], targeted: boolean, errors: ConfigError[]): void {
  const name = `AuthorizationPolicy ${p.namespace}/${p.name}`;
  const ports = instancePorts(targets);
  const tcpAmong = (only?: number[]) => ports.find((x) => x.port.appProtocol === 'tcp' && (!only || only.includes(x.port.targetPort)));
  const httpOnly = (what: string, source: SourceRef | undefined, only?: number[]) => {
    const tcp = tcpAmong(only);
    if (!tcp) return;
    errors.push({
      ...at(source ?? p.source),
      message:
        `${name}: ${what} can only be checked on HTTP, but Service ${tcp.service.namespace}/${tcp.service.name} port ${tcp.port.port}` +
        ` (instance port ${tcp.port.targetPort}) has appProtocol tcp; limit the rule with ports: to HTTP instance ports, or drop ${what}`,
    });
  };
  p.rules.forEach((rule, ri) => {
    for (const op of rule.to) {
      const fields = (['methods', 'notMethods', 'paths', 'notPaths'] as const).filter((f) => op[f]);
      if (fields.length > 0) httpOnly(fields.join(', '), op.source, op.ports);
      if (!targeted) continue;
      for (const port of [...(op.ports ?? []), ...(op.notPorts ?? [])]) {
        if (ports.some((x) => x.port.targetPort === port)) continue;
        const servicePort = ports.find((x) => x.port.port === port);
        const hint = servicePort ? `; ${port} is the port clients dial, the sidecar receives on instance port ${servicePort.port.targetPort}` : '';
        errors.push({
          ...at(op.source ?? p.source),
          message: `${name}: port ${port} is no instance port of its targets (${ports.map((x) => x.port.targetPort).join(', ') || 'none'})${hint}`,
        });
      }
    }
    // `when` applies to every port the rule's operations reach (all, unless each names ports).
    const reach = rule.to.length > 0 && rule.to.every((op) => op.ports) ? rule.to.flatMap((op) => op.ports ?? []) : undefined;
    for (const condition of rule.when) httpOnly(`rule ${ri + 1}'s when on request.headers[${condition.header}]`, condition.source, reach);
  });
}
