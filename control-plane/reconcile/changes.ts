// "Was my change applied?": every published change with the proxies it reached and,
// per proxy and resource type, whether the proxy ACKed it, NACKed it (with the
// proxy's error) or has not answered yet.
//
// A change is published synchronously (Reconciler 'publishing' .. 'published'), and a
// stream pushes synchronously when its snapshot changes, so the pushes made in between
// are exactly the ones the change caused: a proxy that got none is not affected (it
// holds none of what changed), and is not counted as pending.
import { EventEmitter } from 'node:events';
import type { Reconciler, ChangeSummary } from './reconciler.ts';
import { SHORT_NAME, type ResourceTypeUrl } from '../xds/resources/type-urls.ts';
import type { XdsCallbacks } from '../xds/server/types.ts';

export type DeliveryStatus = 'pending' | 'acked' | 'nacked' | 'disconnected';

export interface TypeDelivery {
  nonce: string;
  version: string;
  status: DeliveryStatus;
  error?: string;
  /** Push to answer. */
  latencyMs?: number;
}

export interface ProxyDelivery {
  nodeId: string;
  streamId: number;
  group: string;
  /** By short type name (CDS, EDS, …). */
  types: Record<string, TypeDelivery>;
}

export interface Change extends ChangeSummary {
  version: string;
  appliedAt: string;
  proxies: ProxyDelivery[];
}

export interface ChangeCounts {
  affected: number;
  acked: number;
  nacked: number;
  pending: number;
  disconnected: number;
}

interface Pending {
  nonce: number;
  pushedAt: number;
  delivery: TypeDelivery;
  change: Change;
}

/** A proxy's status over all the types a change pushed to it: a NACK of any type
 *  is a NACK; it is ACKed only once every type is. */
export function proxyStatus(p: ProxyDelivery): DeliveryStatus {
  const statuses = Object.values(p.types).map((t) => t.status);
  if (statuses.includes('nacked')) return 'nacked';
  if (statuses.includes('disconnected')) return 'disconnected';
  if (statuses.includes('pending')) return 'pending';
  return 'acked';
}

export function countsOf(change: Change): ChangeCounts {
  const counts: ChangeCounts = { affected: change.proxies.length, acked: 0, nacked: 0, pending: 0, disconnected: 0 };
  for (const p of change.proxies) counts[proxyStatus(p)]++;
  return counts;
}

export interface ChangeLogEvents {
  /** Every proxy the change affects has ACKed it (ms after it was published). */
  applied: [change: Change, ms: number];
}

/** A change not yet ACKed everywhere: when it was published, how many of its
 *  deliveries are unanswered, and whether one was refused (then it never settles). */
interface Unsettled {
  publishedAt: number;
  open: number;
  failed: boolean;
}

export class ChangeLog extends EventEmitter<ChangeLogEvents> {
  private readonly changes: Change[] = [];
  private readonly unsettled = new Map<Change, Unsettled>();
  private recording?: { change: Change; byStream: Map<number, ProxyDelivery> };
  /** Deliveries not yet answered, by stream and type URL, oldest first. */
  private readonly pending = new Map<number, Map<string, Pending[]>>();

  constructor(
    reconciler: Reconciler,
    private readonly limit = 200,
  ) {
    super();
    reconciler.on('publishing', (summary) => {
      const change: Change = { ...summary, version: String(summary.generation), appliedAt: new Date().toISOString(), proxies: [] };
      this.recording = { change, byStream: new Map() };
      this.unsettled.set(change, { publishedAt: Date.now(), open: 0, failed: false });
    });
    reconciler.on('published', () => {
      const recording = this.recording;
      this.recording = undefined;
      if (!recording) return;
      this.changes.push(recording.change);
      while (this.changes.length > this.limit) this.forget(this.changes.shift()!);
      this.settle(recording.change);
    });
  }

  readonly callbacks: XdsCallbacks = {
    onPush: (stream, push) => {
      const recording = this.recording;
      if (!recording) return;
      let proxy = recording.byStream.get(stream.streamId);
      if (!proxy) {
        proxy = { nodeId: stream.node.id ?? '', streamId: stream.streamId, group: stream.group, types: {} };
        recording.byStream.set(stream.streamId, proxy);
        recording.change.proxies.push(proxy);
      }
      const delivery: TypeDelivery = { nonce: push.nonce, version: push.version, status: 'pending' };
      proxy.types[shortName(push.typeUrl)] = delivery;
      let byType = this.pending.get(stream.streamId);
      if (!byType) this.pending.set(stream.streamId, (byType = new Map()));
      let list = byType.get(push.typeUrl);
      if (!list) byType.set(push.typeUrl, (list = []));
      list.push({ nonce: Number(push.nonce), pushedAt: Date.now(), delivery, change: recording.change });
      const unsettled = this.unsettled.get(recording.change);
      if (unsettled) unsettled.open++;
    },
    // An ACK of a nonce also settles older pushes of the type: the proxy applied a
    // state that includes them. A NACK rejects the pushes up to that nonce, since
    // each carried (SotW) or led to (delta) the state it refused.
    onAck: (stream, ack) => this.answer(stream.streamId, ack.typeUrl, Number(ack.nonce), 'acked'),
    onNack: (stream, nack) => this.answer(stream.streamId, nack.typeUrl, Number(nack.nonce), 'nacked', nack.error.message ?? ''),
    onStreamClose: (stream) => {
      for (const list of this.pending.get(stream.streamId)?.values() ?? []) {
        for (const p of list) this.resolve(p, 'disconnected');
      }
      this.pending.delete(stream.streamId);
    },
  };

  private answer(streamId: number, typeUrl: string, nonce: number, status: 'acked' | 'nacked', error?: string): void {
    const list = this.pending.get(streamId)?.get(typeUrl);
    if (!list || !Number.isFinite(nonce)) return;
    while (list.length > 0 && list[0].nonce <= nonce) {
      const p = list.shift()!;
      p.delivery.latencyMs = Date.now() - p.pushedAt;
      if (error !== undefined) p.delivery.error = error.slice(0, 2000);
      this.resolve(p, status);
    }
  }

  private resolve(p: Pending, status: Exclude<DeliveryStatus, 'pending'>): void {
    p.delivery.status = status;
    const unsettled = this.unsettled.get(p.change);
    if (!unsettled) return;
    unsettled.open--;
    if (status !== 'acked') unsettled.failed = true;
    this.settle(p.change);
  }

  /** Announces a change once every proxy it affects has ACKed it (O(1) per answer). */
  private settle(change: Change): void {
    const unsettled = this.unsettled.get(change);
    if (!unsettled || this.recording?.change === change) return;
    if (unsettled.failed) this.unsettled.delete(change);
    else if (unsettled.open === 0) {
      this.unsettled.delete(change);
      this.emit('applied', change, Date.now() - unsettled.publishedAt);
    }
  }

  private forget(change: Change): void {
    this.unsettled.delete(change);
    for (const proxy of change.proxies) {
      const byType = this.pending.get(proxy.streamId);
      for (const [typeUrl, list] of byType ?? []) {
        const kept = list.filter((p) => p.change !== change);
        if (kept.length > 0) byType!.set(typeUrl, kept);
        else byType!.delete(typeUrl);
      }
      if (byType?.size === 0) this.pending.delete(proxy.streamId);
    }
  }

  /** Newest first. */
  list(): Change[] {
    return [...this.changes].reverse();
  }

  get(version: string): Change | undefined {
    return this.changes.find((c) => c.version === version);
  }

  latest(): Change | undefined {
    return this.changes[this.changes.length - 1];
  }
}

function shortName(typeUrl: string): string {
  return SHORT_NAME[typeUrl as ResourceTypeUrl] ?? typeUrl;
}
