// What SotW and delta streams share: learning the node from the first request,
// joining its proxy group's snapshot watch, flow control, and reporting to callbacks.
import type { ResourceCache } from '../cache/cache.ts';
import type { CachedResource, Snapshot } from '../cache/snapshot.ts';
import { ADS_ORDER } from '../resources/type-urls.ts';
import { NonceLog } from './nonces.ts';
import type { NodeGrouper, RpcStatus, StreamInfo, XdsCallbacks, XdsNode, XdsProtocol } from './types.ts';
import type { EncodedResponse } from './wire.ts';

/** The transport under a stream: grpc-js's duplex call, or a fake in unit tests. */
export interface StreamTransport {
  /** Returns false when the transport's buffer is full: wait for `onDrain`. */
  write(message: EncodedResponse): boolean;
  onDrain(listener: () => void): void;
  end(error?: { code: number; details: string }): void;
  readonly peer: string;
}

export interface StreamDeps {
  cache: ResourceCache;
  group: NodeGrouper;
  callbacks: XdsCallbacks;
  /** A stream whose client has not taken a response for this long is closed. */
  stuckTimeoutMs?: number;
}

const DEFAULT_STUCK_TIMEOUT_MS = 60_000;
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_RESOURCE_EXHAUSTED = 8;

let nextStreamId = 0;

/** What a stream last sent of one type and how the client answered, for CSDS. */
export interface TypeStatus {
  typeUrl: string;
  /** What the client holds or was last sent, as far as the server knows. */
  resources: { name: string; version: string; resource?: CachedResource }[];
  version?: string;
  nonce?: string;
  sentAt?: Date;
  answer: 'none' | 'pending' | 'acked' | 'nacked';
  error?: string;
}

export interface StreamStatus {
  info: StreamInfo;
  types: TypeStatus[];
}

export abstract class XdsStream {
  protected info?: StreamInfo;
  protected snapshot?: Snapshot;
  protected readonly nonces = new NonceLog();
  private cancelWatch?: () => void;
  private closed = false;
  /** The transport's buffer is full: responses wait, coalesced per type. */
  private blocked = false;
  private stuckTimer?: NodeJS.Timeout;
  /** Types owed a response once the client reads again (true: even if unchanged). */
  private readonly owed = new Map<string, boolean>();
  /** The latest push per type and the client's answer to it. */
  private readonly latest = new Map<string, { nonce: string; version: string; sentAtMs: number; answer: TypeStatus['answer']; error?: string }>();

  constructor(
    protected readonly transport: StreamTransport,
    protected readonly deps: StreamDeps,
    private readonly protocol: XdsProtocol,
  ) {
    transport.onDrain(() => this.drained());
  }

  /** Returns false (and ends the stream) when the first request has no usable node. */
  protected ensureNode(node: XdsNode | undefined): boolean {
    if (this.info) return true;
    if (!node?.id) {
      this.fail(GRPC_INVALID_ARGUMENT, 'the first request on a stream must carry node.id');
      return false;
    }
    let group: string;
    try {
      group = this.deps.group(node);
    } catch (err) {
      const code = (err as { code?: string }).code === 'TESSERA_ERR_TOO_MANY_PROXY_GROUPS' ? GRPC_RESOURCE_EXHAUSTED : GRPC_INVALID_ARGUMENT;
      this.fail(code, `node ${node.id}: ${(err as Error).message}`);
      return false;
    }
    this.info = {
      streamId: ++nextStreamId,
      protocol: this.protocol,
      node,
      group,
      peer: this.transport.peer,
      connectedAt: new Date(),
    };
    this.deps.callbacks.onStreamOpen?.(this.info);
    // Subscribing after onStreamOpen so trackers see the stream before its first push.
    this.cancelWatch = this.deps.cache.watch(group, (snapshot) => {
      this.snapshot = snapshot;
      if (this.closed) return;
      for (const typeUrl of ADS_ORDER) this.respond(typeUrl, false);
    });
    return true;
  }

  /** Sends what the client is owed for a type; `force` answers even when nothing
   *  changed (the client asked for new names). Calls `deliver` unless the transport
   *  is full, in which case only the latest state is sent once it drains. */
  protected respond(typeUrl: string, force: boolean): void {
    if (this.closed) return;
    if (this.blocked) {
      this.owed.set(typeUrl, force || (this.owed.get(typeUrl) ?? false));
      return;
    }
    this.deliver(typeUrl, force);
  }

  protected abstract deliver(typeUrl: string, force: boolean): void;

  protected send(message: EncodedResponse, typeUrl: string, nonce: string, version: string, sentAtMs: number): void {
    if (this.closed) return;
    // Reused per type: a push is the hot path, and CSDS reads only the latest.
    const latest = this.latest.get(typeUrl);
    if (latest) {
      latest.nonce = nonce;
      latest.version = version;
      latest.sentAtMs = sentAtMs;
      latest.answer = 'pending';
      latest.error = undefined;
    } else this.latest.set(typeUrl, { nonce, version, sentAtMs, answer: 'pending' });
    if (!this.transport.write(message) && !this.blocked) {
      this.blocked = true;
      const timeout = this.deps.stuckTimeoutMs ?? DEFAULT_STUCK_TIMEOUT_MS;
      this.stuckTimer = setTimeout(() => {
        this.fail(GRPC_RESOURCE_EXHAUSTED, `client read no response for ${timeout} ms; stream closed`);
      }, timeout);
      this.stuckTimer.unref();
    }
  }

  private drained(): void {
    if (!this.blocked) return;
    this.blocked = false;
    clearTimeout(this.stuckTimer);
    // In ADS order, so clusters still come before their endpoints.
    for (const typeUrl of ADS_ORDER) {
      const force = this.owed.get(typeUrl);
      if (force === undefined) continue;
      this.owed.delete(typeUrl);
      this.respond(typeUrl, force);
    }
  }

  protected reportAnswer(typeUrl: string, nonce: string | undefined, error: RpcStatus | undefined): void {
    if (!nonce || !this.info) return;
    const sent = this.nonces.get(nonce);
    const answer = { typeUrl, nonce, version: sent?.version ?? '', latencyMs: sent ? Date.now() - sent.sentAt : undefined };
    const latest = this.latest.get(typeUrl);
    if (latest?.nonce === nonce) {
      latest.answer = error ? 'nacked' : 'acked';
      latest.error = error?.message;
    }
    if (error) this.deps.callbacks.onNack?.(this.info, { ...answer, error });
    else this.deps.callbacks.onAck?.(this.info, answer);
  }

  /** The stream as CSDS reports it. */
  status(): StreamStatus | undefined {
    if (!this.info) return undefined;
    const types: TypeStatus[] = [];
    for (const typeUrl of ADS_ORDER) {
      const resources = this.heldResources(typeUrl);
      const latest = this.latest.get(typeUrl);
      if (!resources && !latest) continue;
      types.push({
        typeUrl,
        resources: resources ?? [],
        version: latest?.version,
        nonce: latest?.nonce,
        sentAt: latest ? new Date(latest.sentAtMs) : undefined,
        answer: latest?.answer ?? 'none',
        error: latest?.error,
      });
    }
    return { info: this.info, types };
  }

  /** The resources of a type the client holds or was last sent; undefined when it
   *  has not subscribed to the type. */
  protected abstract heldResources(typeUrl: string): TypeStatus['resources'] | undefined;

  protected fail(code: number, message: string): void {
    this.deps.callbacks.onProtocolError?.(this.info, message);
    this.transport.end({ code, details: message });
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stuckTimer);
    this.owed.clear();
    this.cancelWatch?.();
    if (this.info) this.deps.callbacks.onStreamClose?.(this.info);
  }
}
