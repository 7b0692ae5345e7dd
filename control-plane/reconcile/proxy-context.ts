// Which ProxyContext a connecting node gets, from the metadata `tessera bootstrap`
// writes (node.metadata.tessera) or, without it, from what kind of client it is.
import type { ProxyContext } from '../model/types.ts';
import { structToJson } from '../xds/resources/struct.ts';
import type { XdsNode } from '../xds/server/types.ts';

export const DEFAULT_OUTBOUND = { address: '127.0.0.1', port: 15001 };
export const DEFAULT_INBOUND_CAPTURE_PORT = 15006;

export class NodeMetadataError extends Error {
  readonly code = 'TESSERA_ERR_NODE_METADATA';
}

export function proxyContextOf(node: XdsNode): ProxyContext {
  const meta = structToJson(node.metadata).tessera as Record<string, any> | undefined;
  const mode = meta?.mode ?? (node.user_agent_name === 'envoy' ? 'sidecar' : 'proxyless');
  const zone = node.locality?.zone || undefined;
  if (mode === 'proxyless') return zone ? { kind: 'proxyless', zone } : { kind: 'proxyless' };
  if (mode !== 'sidecar') throw new NodeMetadataError(`metadata.tessera.mode must be sidecar or proxyless, not ${mode}`);
  const service = meta?.service ?? (node.cluster || undefined);
  const context: ProxyContext = {
    kind: 'sidecar',
    service,
    namespace: meta?.namespace ?? 'default',
    outbound: {
      address: meta?.outbound?.address ?? DEFAULT_OUTBOUND.address,
      port: port(meta?.outbound?.port ?? DEFAULT_OUTBOUND.port, 'outbound.port'),
    },
  };
  if (zone) context.zone = zone;
  if (meta?.inbound) {
    context.inbound = {
      address: meta.inbound.address ?? '0.0.0.0',
      port: port(meta.inbound.port, 'inbound.port'),
      appPort: port(meta.inbound.app_port, 'inbound.app_port'),
      appAddress: meta.inbound.app_address ?? '127.0.0.1',
    };
  }
  if (meta?.capture !== undefined && meta.capture !== false) {
    if (meta.capture !== true) throw new NodeMetadataError(`metadata.tessera.capture must be true or false, not ${JSON.stringify(meta.capture)}`);
    context.capture = { inboundPort: port(meta.inbound_capture_port ?? DEFAULT_INBOUND_CAPTURE_PORT, 'inbound_capture_port') };
  }
  return context;
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
