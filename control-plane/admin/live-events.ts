// Server-sent events for the dashboard (GET /api/v1/events): "something about these
// topics changed, fetch them again". Sources call notify() as often as they like (an
// xDS callback per ACK, a registry change per health transition); messages go out at
// most once per `minIntervalMs`, carrying every topic touched meanwhile, so a burst of
// 10,000 ACKs costs one message. notify() is O(1) and allocates nothing per call,
// since it sits on the xDS hot path.
import type { IncomingMessage, ServerResponse } from 'node:http';

export const TOPICS = ['services', 'proxies', 'changes', 'config', 'traffic'] as const;
export type Topic = (typeof TOPICS)[number];

export interface LiveEventsOptions {
  /** At most one message per this many ms (default 250: four a second). */
  minIntervalMs?: number;
  /** A comment line this often keeps idle connections (and proxies in front) open. */
  heartbeatMs?: number;
  /** More clients than this are refused (503), so a leak of tabs cannot exhaust the process. */
  maxClients?: number;
}

export class LiveEvents {
  private readonly clients = new Set<ServerResponse>();
  private readonly dirty = new Set<Topic>();
  private timer?: NodeJS.Timeout;
  private lastSentAt = 0;
  private heartbeat?: NodeJS.Timeout;
  private sequence = 0;
  private readonly options: Required<LiveEventsOptions>;

  constructor(options: LiveEventsOptions = {}) {
    this.options = { minIntervalMs: 250, heartbeatMs: 15_000, maxClients: 256, ...options };
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Marks topics changed; a message follows within `minIntervalMs`. */
  notify(...topics: Topic[]): void {
    if (this.clients.size === 0) return;
    for (const topic of topics) this.dirty.add(topic);
    if (this.timer) return;
    const wait = Math.max(0, this.lastSentAt + this.options.minIntervalMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref();
  }

  /** Takes over one HTTP response for as long as the client stays connected. */
  attach(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= this.options.maxClients) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' });
      res.end(`too many event streams open (${this.options.maxClients})\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Reverse proxies (nginx) buffer responses unless told not to.
      'x-accel-buffering': 'no',
    });
    // `retry` tells EventSource how soon to reconnect; the first message lets the page
    // know the stream is live and that it should fetch everything.
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ topics: TOPICS })}\n\n`);
    this.clients.add(res);
    this.startHeartbeat();
    const drop = () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopHeartbeat();
    };
    req.once('close', drop);
    res.once('close', drop);
    res.once('error', drop);
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.stopHeartbeat();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.dirty.size === 0) return;
    this.lastSentAt = Date.now();
    const topics = [...this.dirty];
    this.dirty.clear();
    this.broadcast(`id: ${++this.sequence}\nevent: update\ndata: ${JSON.stringify({ topics })}\n\n`);
  }

  private broadcast(text: string): void {
    for (const res of this.clients) {
      // A client that stopped reading (its buffer is full) is dropped rather than
      // letting its backlog grow: it reconnects and fetches everything again.
      if (res.writableLength > 1024 * 1024) res.destroy();
      else res.write(text);
    }
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => this.broadcast(': heartbeat\n\n'), this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}
