// What the comparator needs from the rest of the control plane: the instances of a
// Service (file endpoints and the registry, healthy only, on the port the caller
// dialled) and the address sidecars reach it at.
import os from 'node:os';
import { authorize, policiesFor, type AuthorizationRequest } from '../model/authorization.ts';
import { DEFAULT_TRUST_DOMAIN, effectiveMtlsMode, serviceSpiffeIds, type Endpoint, type MeshModel } from '../model/types.ts';
import { TLS_MODE_LABEL } from '../translate/tls.ts';
import type { Instance, ParallelRunTarget } from './parallel-run.ts';

export function comparatorInstances(model: MeshModel | undefined, endpoints: Endpoint[], ref: { service: string; namespace: string }, port?: number): Instance[] {
  const service = model?.services.find((s) => s.name === ref.service && s.namespace === ref.namespace);
  let mine = endpoints.filter((e) => e.service === ref.service && e.namespace === ref.namespace && e.health === 'healthy');
  // A multi-port Service: the instances of the port dialled, else of its first HTTP port.
  if (service && service.ports.length > 1) {
    const servicePort = service.ports.find((p) => p.port === port) ?? service.ports.find((p) => p.appProtocol !== 'tcp') ?? service.ports[0];
    mine = mine.filter((e) => e.port === servicePort.targetPort);
  }
  // As sidecars do (auto mTLS): mTLS to an instance whose sidecar has a certificate,
  // unless its Service is DISABLE; the peer must be one of the Service's identities.
  const trustDomain = model?.meshConfig?.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const identities = serviceSpiffeIds(trustDomain, service ?? { name: ref.service, namespace: ref.namespace });
  const disabled = model ? effectiveMtlsMode(model, ref.service, ref.namespace) === 'DISABLE' : false;
  const seen = new Set<string>();
  const out: Instance[] = [];
  for (const e of [...mine].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const key = `${e.address}:${e.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const tls = !disabled && e.labels[TLS_MODE_LABEL] === 'mutual' ? { tls: { identities } } : {};
    out.push({ address: e.address, port: e.port, ...tls });
  }
  return out;
}

/** A run's mirrors must come over mTLS when any Service it involves (target, stable,
 *  candidate) is STRICT, and when there is no model yet to tell (mirror-acceptance.ts). */
export function mirrorNeedsMtls(model: MeshModel | undefined, run: Pick<ParallelRunTarget, 'target' | 'stable' | 'candidate'>): boolean {
  if (!model) return true;
  return [run.target, run.stable, run.candidate].some((r) => effectiveMtlsMode(model, r.service, r.namespace) === 'STRICT');
}

/** Whether a Service's sidecars would let the mirroring sidecar send this request
 *  (its AuthorizationPolicies, evaluated as their RBAC does). No model yet: no. */
export function mirrorAuthorized(model: MeshModel | undefined, ref: { service: string; namespace: string }, request: AuthorizationRequest): boolean {
  if (!model) return false;
  return authorize(policiesFor(model, ref.service, ref.namespace), request, model.meshConfig?.trustDomain ?? DEFAULT_TRUST_DOMAIN).allowed;
}

/** A wildcard bind address is no address to dial: this host's first non-internal IPv4. */
export function advertisedAddress(bind: string): string {
  if (bind !== '0.0.0.0' && bind !== '::' && bind !== '') return bind;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  }
  return '127.0.0.1';
}
