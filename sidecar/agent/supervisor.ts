// Keeps one Envoy running: starts it from the bootstrap, restarts it with
// exponential backoff when it dies, and gives up after a run of failed starts
// (a bootstrap Envoy rejects will not get better by retrying forever).
import { EventEmitter } from 'node:events';
import { request } from 'undici';
import { runEnvoy, type EnvoyHandle } from './envoy.ts';

export interface SupervisorOptions {
  envoy: string;
  bootstrap: Record<string, unknown>;
  /** Envoy's admin API, as the bootstrap sets it. */
  adminUrl: string;
  workDir: string;
  drainTimeS: number;
  uid?: number;
  gid?: number;
  /** Consecutive deaths before becoming ready, after which the supervisor gives up. */
  maxFailedStarts?: number;
  backoff?: { initialMs: number; maxMs: number };
  log: (line: string) => void;
  /** Envoy's standard output, where only access logs to /dev/stdout are written (its own
   *  log goes to stderr); default: the log, like stderr. */
  stdout?: (chunk: Buffer) => void;
}

/** Events: 'started' (pid), 'exit' (code, signal), 'gave-up' (reason). */
export class EnvoySupervisor extends EventEmitter {
  current?: EnvoyHandle;
  restarts = 0;
  private stopping = false;
  private failedStarts = 0;
  private everReadyThisRun = false;
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: SupervisorOptions) {
    super();
  }

  get adminUrl(): string {
    return this.o.adminUrl;
  }

  get pid(): number | undefined {
    const child = this.current?.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  start(): void {
    this.everReadyThisRun = false;
    const handle = runEnvoy({
      envoy: this.o.envoy,
      bootstrap: this.o.bootstrap,
      workDir: this.o.workDir,
      stdio: 'pipe',
      logLevel: 'warning',
      drainTimeS: this.o.drainTimeS,
      uid: this.o.uid,
      gid: this.o.gid,
    });
    this.current = handle;
    const prefix = (chunk: Buffer) => this.o.log(chunk.toString().trimEnd().replace(/^/gm, '[envoy] '));
    handle.child.stdout?.on('data', this.o.stdout ?? prefix);
    handle.child.stderr?.on('data', prefix);
    handle.child.once('error', (err) => this.o.log(`envoy could not start: ${err.message}`));
    handle.child.once('exit', (code, signal) => this.onExit(code, signal));
    if (handle.child.pid) this.emit('started', handle.child.pid);
  }

  /** The proxy became ready: later deaths count as crashes, not failed starts. */
  markReady(): void {
    this.everReadyThisRun = true;
    this.failedStarts = 0;
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.emit('exit', code, signal);
    if (this.stopping) return;
    if (!this.everReadyThisRun) this.failedStarts++;
    const max = this.o.maxFailedStarts ?? 5;
    if (this.failedStarts >= max) {
      this.emit('gave-up', `envoy exited ${this.failedStarts} times in a row before becoming ready (last: ${signal ?? `code ${code}`})`);
      return;
    }
    const { initialMs, maxMs } = this.o.backoff ?? { initialMs: 200, maxMs: 10_000 };
    const delay = Math.min(maxMs, initialMs * 2 ** Math.max(0, this.failedStarts - 1));
    this.o.log(`envoy exited (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
    this.timer = setTimeout(() => {
      this.restarts++;
      this.start();
    }, delay);
  }

  /** Envoy has its initial config and accepted both CDS and LDS at least once. */
  async envoyReady(): Promise<boolean> {
    if (!this.pid) return false;
    try {
      const ready = await request(`${this.adminUrl}/ready`, { headersTimeout: 1000, bodyTimeout: 1000 });
      const state = (await ready.body.text()).trim();
      if (ready.statusCode !== 200 || state !== 'LIVE') return false;
      const stats = await request(`${this.adminUrl}/stats?filter=^(cluster_manager\\.cds|listener_manager\\.lds)\\.update_success$`, { headersTimeout: 1000, bodyTimeout: 1000 });
      const text = await stats.body.text();
      const value = (name: string) => Number(new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)`, 'm').exec(text)?.[1] ?? 0);
      return value('cluster_manager.cds.update_success') > 0 && value('listener_manager.lds.update_success') > 0;
    } catch {
      return false;
    }
  }

  /** Sum of Envoy's in-flight requests on its inbound HTTP listeners. */
  async inboundRequestsActive(): Promise<number> {
    const res = await request(`${this.adminUrl}/stats?filter=^http\\.inbound.*\\.downstream_rq_active$`, { headersTimeout: 1000, bodyTimeout: 1000 });
    const text = await res.body.text();
    return [...text.matchAll(/: (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  }

  /** Graceful drain of the inbound listeners: Envoy asks clients to close
   *  (Connection: close, GOAWAY) and stops accepting after --drain-time-s. */
  async drainInbound(): Promise<void> {
    const res = await request(`${this.adminUrl}/drain_listeners?graceful&inboundonly`, { method: 'POST' });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`envoy drain_listeners answered ${res.statusCode}`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.current?.stop();
  }
}
