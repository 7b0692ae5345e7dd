// What SotW and delta streams share: learning the node from the first request,
// joining its proxy group's snapshot watch, and reporting to callbacks.
import type { ResourceCache } from '../cache/cache.ts';
import type { Snapshot } from '../cache/snapshot.ts';
import { NonceLog } from './nonces.ts';
import type { NodeGrouper, RpcStatus, StreamInfo, XdsCallbacks, XdsNode, XdsProtocol } from './types.ts';

/** The transport under a stream: grpc-js's duplex call, or a fake in unit tests. */
export interface StreamTransport<Res> {
  write(message: Res): boolean;
  end(error?: { code: number; details: string }): void;
  readonly peer: string;
}

export interface StreamDeps {
  cache: ResourceCache;
  group: NodeGrouper;
  callbacks: XdsCallbacks;
}

let nextStreamId = 0;

export abstract class XdsStream<Res> {
  protected info?: StreamInfo;
  protected snapshot?: Snapshot;
  protected readonly nonces = new NonceLog();
  private cancelWatch?: () => void;
  private closed = false;

  constructor(
    protected readonly transport: StreamTransport<Res>,
    protected readonly deps: StreamDeps,
    private readonly protocol: XdsProtocol,
  ) {}

  /** Returns false (and ends the stream) when the first request has no usable node. */
  protected ensureNode(node: XdsNode | undefined): boolean {
    if (this.info) return true;
    if (!node?.id) {
      this.fail(3, 'the first request on a stream must carry node.id');
      return false;
    }
    let group: string;
    try {
      group = this.deps.group(node);
    } catch (err) {
      this.fail(3, `node ${node.id}: ${(err as Error).message}`);
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
      if (!this.closed) this.onSnapshot();
    });
    return true;
  }

  protected abstract onSnapshot(): void;

  protected send(message: Res): void {
    if (!this.closed) this.transport.write(message);
  }

  protected reportAnswer(typeUrl: string, nonce: string | undefined, error: RpcStatus | undefined): void {
    if (!nonce || !this.info) return;
    const sent = this.nonces.get(nonce);
    const answer = { typeUrl, nonce, version: sent?.version ?? '', latencyMs: sent ? Date.now() - sent.sentAt : undefined };
    if (error) this.deps.callbacks.onNack?.(this.info, { ...answer, error });
    else this.deps.callbacks.onAck?.(this.info, answer);
  }

  protected fail(code: number, message: string): void {
    this.deps.callbacks.onProtocolError?.(this.info, message);
    this.transport.end({ code, details: message });
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelWatch?.();
    if (this.info) this.deps.callbacks.onStreamClose?.(this.info);
  }
}
