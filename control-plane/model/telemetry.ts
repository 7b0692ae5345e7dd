// The Telemetry in effect for one sidecar: the mesh-wide document, overridden field by
// field by the one that targets the sidecar's service. Shared by the config checks
// (which refuse an effective config that is incomplete) and the translator.
import type { MeshModel, Telemetry } from './types.ts';

export interface EffectiveTelemetry {
  accessLog?: { path: string; fields: Record<string, string> };
  tracing?: { otlpAddress: string; samplingPercent?: number; serviceName?: string };
}

/** The mesh-wide Telemetry (no targets), if any; the config checks allow one. */
export function meshWideTelemetry(model: MeshModel): Telemetry | undefined {
  return (model.telemetry ?? []).find((t) => t.targets.length === 0);
}

/** The Telemetry targeting a service, if any; the config checks allow one per service. */
export function targetedTelemetry(model: MeshModel, service: string, namespace: string): Telemetry | undefined {
  return (model.telemetry ?? []).find((t) => t.targets.some((s) => s.service === service && s.namespace === namespace));
}

/** Merges the two documents: a field the targeted one leaves out comes from the
 *  mesh-wide one, except `disabled`: a section present in the targeted document is on
 *  unless it says otherwise. A part that is off, or has no destination, is absent. */
export function mergeTelemetry(mesh: Telemetry | undefined, own: Telemetry | undefined): EffectiveTelemetry {
  const out: EffectiveTelemetry = {};
  const log = { ...definedOnly(mesh?.accessLog), ...definedOnly(own?.accessLog) };
  const logOff = own?.accessLog ? own.accessLog.disabled === true : mesh?.accessLog?.disabled === true;
  if (log.path && !logOff) {
    out.accessLog = { path: log.path, fields: { ...mesh?.accessLog?.fields, ...own?.accessLog?.fields } };
  }
  const tracing = { ...definedOnly(mesh?.tracing), ...definedOnly(own?.tracing) };
  const tracingOff = own?.tracing ? own.tracing.disabled === true : mesh?.tracing?.disabled === true;
  if (tracing.otlpAddress && !tracingOff) {
    out.tracing = definedOnly({ otlpAddress: tracing.otlpAddress, samplingPercent: tracing.samplingPercent, serviceName: tracing.serviceName });
  }
  return out;
}

/** What a sidecar of `service` (none: an outbound-only sidecar) gets. */
export function effectiveTelemetry(model: MeshModel, service: string | undefined, namespace: string): EffectiveTelemetry {
  return mergeTelemetry(meshWideTelemetry(model), service === undefined ? undefined : targetedTelemetry(model, service, namespace));
}

/** The fields that are set (`fields` maps are merged key by key instead). */
function definedOnly<T extends object>(o: T | undefined): Omit<T, 'fields'> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([k, v]) => v !== undefined && k !== 'fields')) as Omit<T, 'fields'>;
}

/** For metrics: how many services' sidecars log and trace, and whether the mesh-wide
 *  Telemetry (what outbound-only sidecars get) does. */
export function telemetryInEffect(model: MeshModel): { documents: number; services: { accessLog: number; tracing: number }; meshWide: { accessLog: boolean; tracing: boolean } } {
  const services = { accessLog: 0, tracing: 0 };
  for (const s of model.services) {
    const e = effectiveTelemetry(model, s.name, s.namespace);
    if (e.accessLog) services.accessLog++;
    if (e.tracing) services.tracing++;
  }
  const mesh = mergeTelemetry(meshWideTelemetry(model), undefined);
  return { documents: model.telemetry?.length ?? 0, services, meshWide: { accessLog: !!mesh.accessLog, tracing: !!mesh.tracing } };
}
