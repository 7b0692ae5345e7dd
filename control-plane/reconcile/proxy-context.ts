// Which ProxyContext a connecting node gets, from the metadata `tessera bootstrap`
// writes (node.metadata.tessera) or, without it, from what kind of client it is.
import net from 'node:net';
import type { ProxyContext } from '../model/types.ts';
import { structToJson } from '../xds/resources/struct.ts';
import type { XdsNode } from '../xds/server/types.ts';

export const DEFAULT_OUTBOUND = { address: '127.0.0.1', port: 15001 };
export const DEFAULT_INBOUND_CAPTURE_PORT = 15006;

export class NodeMetadataError extends Error {
  readonly code = 'TESSERA_ERR_NODE_METADATA';
}

/** Only the fields below are read from node metadata, each checked: anything else a
 *  client sends is not kept, so it cannot make new proxy groups. */
export function proxyContextOf(node: XdsNode): ProxyContext {
  const raw = structToJson(node.metadata).tessera;
  if (raw !== undefined && !isObject(raw)) throw new NodeMetadataError('metadata.tessera must be an object');
  const meta = raw as Record<string, unknown> | undefined;
  const mode = meta?.mode ?? (node.user_agent_name === 'envoy' ? 'sidecar' : 'proxyless');
  const zone = name(node.locality?.zone || undefined, 'node.locality.zone');
  if (mode === 'proxyless') {
    const context: ProxyContext = { kind: 'proxyless' };
    if (zone) context.zone = zone;
    if (meta?.certificates !== undefined && meta.certificates !== false) {
      if (meta.certificates !== true) throw new NodeMetadataError(`metadata.tessera.certificates must be true or false, not ${JSON.stringify(meta.certificates)}`);
      context.certificates = true;
    }
    return context;
  }
  if (mode !== 'sidecar') throw new NodeMetadataError(`metadata.tessera.mode must be sidecar or proxyless, not ${JSON.stringify(mode)}`);
  const outbound = object(meta?.outbound, 'outbound');
  const context: ProxyContext = {
    kind: 'sidecar',
    service: name(meta?.service ?? (node.cluster || undefined), 'service'),
    namespace: name(meta?.namespace, 'namespace') ?? 'default',
    outbound: {
      address: ip(outbound?.address, 'outbound.address') ?? DEFAULT_OUTBOUND.address,
      port: port(outbound?.port ?? DEFAULT_OUTBOUND.port, 'outbound.port'),
    },
  };
  if (zone) context.zone = zone;
  const inbound = object(meta?.inbound, 'inbound');
  if (inbound) {
    context.inbound = {
      address: ip(inbound.address, 'inbound.address') ?? '0.0.0.0',
      port: port(inbound.port, 'inbound.port'),
      appPort: port(inbound.app_port, 'inbound.app_port'),
      appAddress: ip(inbound.app_address, 'inbound.app_address') ?? '127.0.0.1',
    };
  }
  if (meta?.capture !== undefined && meta.capture !== false) {
    if (meta.capture !== true) throw new NodeMetadataError(`metadata.tessera.capture must be true or false, not ${JSON.stringify(meta.capture)}`);
    context.capture = { inboundPort: port(meta.inbound_capture_port ?? DEFAULT_INBOUND_CAPTURE_PORT, 'inbound_capture_port') };
  }
  // Only a claim that the agent's SDS socket exists: the secrets themselves never come
  // from the control plane, so a forged claim gets the proxy nothing but listeners that
  // wait for a certificate it cannot have.
  if (meta?.sds !== undefined && meta.sds !== false) {
    if (meta.sds !== true) throw new NodeMetadataError(`metadata.tessera.sds must be true or false, not ${JSON.stringify(meta.sds)}`);
    context.sds = true;
  }
  return context;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function object(value: unknown, field: string): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new NodeMetadataError(`metadata.tessera.${field} must be an object`);
  return value;
}

/** Envoy binds listeners to these, and refuses (NACKs) anything but an IP address. */
function ip(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || net.isIP(value) === 0) {
    throw new NodeMetadataError(`metadata.tessera.${field} must be an IP address, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** Service, namespace and zone names: DNS-label-like, as Kubernetes allows them. */
function name(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,251}[a-zA-Z0-9])?$/.test(value)) {
    const where = field.startsWith('node.') ? field : `metadata.tessera.${field}`;
    throw new NodeMetadataError(`${where} must be a name of at most 253 letters, digits, '-', '_' or '.', not ${JSON.stringify(value).slice(0, 80)}`);
  }
  return value;
}

function port(value: unknown, field: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new NodeMetadataError(`metadata.tessera.${field} must be a port number, not ${JSON.stringify(value)}`);
  }
  return n;
}

/** Proxies with the same context share one snapshot: the group key is the context. */
export function groupKey(context: ProxyContext): string {
  return JSON.stringify(context, Object.keys(flatKeys(context)).sort());
}

function flatKeys(o: unknown, acc: Record<string, true> = {}): Record<string, true> {
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      acc[k] = true;
      flatKeys(v, acc);
    }
  }
  return acc;
}
