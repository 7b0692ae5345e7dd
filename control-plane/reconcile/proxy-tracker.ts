// Per-proxy, per-type xDS state for the admin API, fed by the server's callbacks.
import { SHORT_NAME, type ResourceTypeUrl } from '../xds/resources/type-urls.ts';
import type { AckInfo, PushInfo, RpcStatus, StreamInfo, XdsCallbacks } from '../xds/server/types.ts';

export interface TypeStatus {
  sentVersion?: string;
  sentNonce?: string;
  sentAt?: string;
  sentAtMs?: number;
  ackedAtMs?: number;
  ackedVersion?: string;
  ackedNonce?: string;
  ackedAt?: string;
  lastNack?: { version: string; nonce: string; error: string; code?: number; at: string };
}

export interface ProxyStatus {
  nodeId: string;
  service?: string;
  userAgent?: string;
  protocol: 'sotw' | 'delta';
  peer: string;
  group: string;
  streamId: number;
  connectedSince: string;
  types: Record<string, TypeStatus>;
}

export class ProxyTracker {
  private readonly proxies = new Map<number, ProxyStatus>();

  readonly callbacks: XdsCallbacks = {
    onStreamOpen: (s) => {
      this.proxies.set(s.streamId, {
        nodeId: s.node.id!,
        service: s.node.cluster || undefined,
        userAgent: [s.node.user_agent_name, s.node.user_agent_version].filter(Boolean).join('/') || undefined,
        protocol: s.protocol,
        peer: s.peer,
        group: s.group,
        streamId: s.streamId,
        connectedSince: s.connectedAt.toISOString(),
        types: {},
      });
    },
    onStreamClose: (s) => {
      this.proxies.delete(s.streamId);
    },
    onPush: (s, push: PushInfo) => {
      const t = this.typeStatus(s, push.typeUrl);
      if (!t) return;
      t.sentVersion = push.version;
      t.sentNonce = push.nonce;
      t.sentAtMs = Date.now();
    },
    onAck: (s, ack: AckInfo) => {
      const t = this.typeStatus(s, ack.typeUrl);
      if (!t) return;
      t.ackedVersion = ack.version;
      t.ackedNonce = ack.nonce;
      t.ackedAtMs = Date.now();
    },
    onNack: (s, nack: AckInfo & { error: RpcStatus }) => {
      const t = this.typeStatus(s, nack.typeUrl);
      if (!t) return;
      t.lastNack = {
        version: nack.version,
        nonce: nack.nonce,
        error: nack.error.message ?? '',
        code: nack.error.code,
        at: new Date().toISOString(),
      };
    },
  };

  private typeStatus(s: StreamInfo, typeUrl: string): TypeStatus | undefined {
    const proxy = this.proxies.get(s.streamId);
    if (!proxy) return undefined;
    const key = SHORT_NAME[typeUrl as ResourceTypeUrl] ?? typeUrl;
    return (proxy.types[key] ??= {});
  }

  /** With times as ISO strings; kept as numbers until asked, as pushes and ACKs are many. */
  list(): ProxyStatus[] {
    return [...this.proxies.values()].map(withIsoTimes).sort((a, b) => a.nodeId.localeCompare(b.nodeId) || a.streamId - b.streamId);
  }

  find(nodeId: string): ProxyStatus | undefined {
    return this.list().find((p) => p.nodeId === nodeId);
  }

  get count(): number {
    return this.proxies.size;
  }
}

function withIsoTimes(p: ProxyStatus): ProxyStatus {
  const iso = (ms?: number) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const types = Object.fromEntries(
    Object.entries(p.types).map(([k, { sentAtMs, ackedAtMs, ...t }]) => [k, { ...t, sentAt: iso(sentAtMs), ackedAt: iso(ackedAtMs) }]),
  );
  return { ...p, types };
}

/** Several callback sets as one. Pushes and ACKs come once per stream and change,
 *  so each combined callback calls its handlers directly (no rest arguments). */
export function combineCallbacks(...sets: XdsCallbacks[]): XdsCallbacks {
  const keys = ['onStreamOpen', 'onStreamClose', 'onPush', 'onAck', 'onNack', 'onProtocolError'] as const;
  const out: XdsCallbacks = {};
  for (const key of keys) {
    const fns = sets.map((s) => s[key]).filter(Boolean) as ((a: unknown, b: unknown) => void)[];
    if (fns.length === 0) continue;
    (out as Record<string, (a: unknown, b: unknown) => void>)[key] =
      fns.length === 1
        ? fns[0]
        : (a: unknown, b: unknown) => {
            for (let i = 0; i < fns.length; i++) fns[i](a, b);
          };
  }
  return out;
}
