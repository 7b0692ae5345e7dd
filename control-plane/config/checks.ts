// Checks across documents: names unique, every reference resolves, regexes are
// RE2 (what Envoy and gRPC use), ports exist.
import { RE2 } from 're2-wasm';
import { checkAuthorizationPolicies } from './checks-authorization.ts';
import { mergeTelemetry } from '../model/telemetry.ts';
import type { MeshModel, Telemetry } from '../model/types.ts';
import type { Reference, RegexUse } from './convert.ts';
import type { ConfigError } from './load.ts';

export function checkModel(model: MeshModel, refs: Reference[], regexes: RegexUse[], errors: ConfigError[]): void {
  const services = new Map(model.services.map((s) => [`${s.namespace}/${s.name}`, s]));
  unique(model.services.map((s) => ({ key: `${s.namespace}/${s.name}`, what: `Service ${s.namespace}/${s.name}`, source: s.source })), errors);
  unique(model.routes.map((r) => ({ key: `${r.kind} ${r.namespace}/${r.name}`, what: `${r.kind} ${r.namespace}/${r.name}`, source: r.source })), errors);
  unique(model.policies.map((p) => ({ key: `${p.namespace}/${p.name}`, what: `TrafficPolicy ${p.namespace}/${p.name}`, source: p.source })), errors);
  const canaries = model.canaries ?? [];
  unique(canaries.map((c) => ({ key: `${c.namespace}/${c.name}`, what: `Canary ${c.namespace}/${c.name}`, source: c.source })), errors);
  const byTarget = new Map<string, (typeof canaries)[number]>();
  for (const c of canaries) {
    const first = byTarget.get(`${c.target.namespace}/${c.target.service}`);
    if (first) {
      errors.push({ ...at(c.source), message: `Canary ${c.namespace}/${c.name}: Service ${c.target.service} already has Canary ${first.name} (${first.source?.file}:${first.source?.line}); one Canary per Service` });
    } else byTarget.set(`${c.target.namespace}/${c.target.service}`, c);
  }
  for (const c of canaries) {
    const target = services.get(`${c.target.namespace}/${c.target.service}`);
    if (target && !target.ports.some((p) => p.appProtocol !== 'tcp')) {
      errors.push({ ...at(c.source), message: `Canary ${c.namespace}/${c.name}: Service ${c.target.service} has only tcp ports; traffic is split per HTTP request` });
    }
  }
  for (const s of model.services) {
    const ports = new Set<number>();
    for (const p of s.ports) {
      if (ports.has(p.port)) errors.push({ ...at(s.source), message: `Service ${s.namespace}/${s.name}: port ${p.port} is listed twice` });
      ports.add(p.port);
    }
  }
  for (const ref of refs) {
    const service = services.get(`${ref.namespace}/${ref.service}`);
    if (!service) {
      const declared = model.services.filter((s) => s.namespace === ref.namespace).map((s) => s.name);
      errors.push({
        file: ref.file,
        line: ref.line,
        column: ref.column,
        message: `${ref.from} '${ref.service}' names no Service in namespace ${ref.namespace} (declared: ${declared.join(', ') || 'none'})`,
      });
    } else if (ref.port !== undefined && !service.ports.some((p) => p.port === ref.port)) {
      errors.push({
        file: ref.file,
        line: ref.line,
        column: ref.column,
        message: `${ref.from} '${ref.service}' has no port ${ref.port} (ports: ${service.ports.map((p) => p.port).join(', ')})`,
      });
    }
  }
  checkAuthorizationPolicies(model, errors);
  checkTelemetry(model.telemetry ?? [], errors);
  for (const use of regexes) {
    try {
      new RE2(use.regex, 'u');
    } catch (err) {
      const reason = (err as Error).message.replace(/^Invalid regular expression: \/.*\/u: /, '');
      errors.push({ file: use.file, line: use.line, column: use.column, message: `${use.from}: invalid regular expression ${JSON.stringify(use.regex)} (RE2): ${reason}` });
    }
  }
}

const at = (source?: { file: string; line: number }) => ({ file: source?.file ?? '', line: source?.line ?? 0 });

function unique(items: { key: string; what: string; source?: { file: string; line: number } }[], errors: ConfigError[]): void {
  const first = new Map<string, { file: string; line: number } | undefined>();
  for (const item of items) {
    if (first.has(item.key)) {
      const f = first.get(item.key);
      errors.push({ ...at(item.source), message: `${item.what} is declared twice (first at ${f?.file}:${f?.line})` });
    } else first.set(item.key, item.source);
  }
}

/** One mesh-wide Telemetry, at most one per service, and what each sidecar ends up
 *  with must be complete: logging needs a path and tracing a collector address,
 *  from the document itself or from the mesh-wide one it overrides. */
function checkTelemetry(all: Telemetry[], errors: ConfigError[]): void {
  const what = (t: Telemetry) => `Telemetry ${t.namespace}/${t.name}`;
  unique(all.map((t) => ({ key: `${t.namespace}/${t.name}`, what: what(t), source: t.source })), errors);
  const meshWide = all.filter((t) => t.targets.length === 0);
  for (const extra of meshWide.slice(1)) {
    const first = meshWide[0];
    errors.push({ ...at(extra.source), message: `${what(extra)}: only one Telemetry may be mesh-wide (without targetRefs); ${what(first)} at ${first.source?.file}:${first.source?.line} is too` });
  }
  const mesh = meshWide[0];
  const byService = new Map<string, Telemetry>();
  for (const t of all) {
    for (const target of t.targets) {
      const key = `${target.namespace}/${target.service}`;
      const previous = byService.get(key);
      if (previous && previous !== t) {
        errors.push({ ...at(t.source), message: `${what(t)}: Service ${key} is already targeted by ${what(previous)} at ${previous.source?.file}:${previous.source?.line}; one Telemetry per Service` });
      } else byService.set(key, t);
    }
  }
  for (const t of all) {
    const merged = mergeTelemetry(t === mesh ? undefined : mesh, t);
    const inherits = t === mesh || !mesh ? '' : ` (nor does the mesh-wide ${what(mesh)})`;
    if (t.accessLog && !t.accessLog.disabled && !merged.accessLog) {
      errors.push({ ...at(t.source), message: `${what(t)}: accessLog needs a path (a file, or /dev/stdout)${inherits ? `, which it does not give${inherits}` : ''}` });
    }
    if (t.tracing && !t.tracing.disabled && !merged.tracing) {
      errors.push({ ...at(t.source), message: `${what(t)}: tracing needs otlp.address${inherits ? `, which it does not give${inherits}` : ''}` });
    }
  }
}
