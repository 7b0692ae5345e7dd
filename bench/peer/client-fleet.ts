// The simulated proxies, spread over child processes (one Node process cannot
// keep up with thousands of streams on its own), armed and collected over IPC.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientReport } from './clients.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Clients per child process (BENCH_PEER_CLIENTS_PER_PROCESS overrides). */
export const CLIENTS_PER_PROCESS = Number(process.env.BENCH_PEER_CLIENTS_PER_PROCESS ?? 2500);

export class ClientFleet {
  private readonly children: ChildProcess[] = [];
  private readonly inbox = new Map<ChildProcess, any[]>();
  private readonly waiters: (() => void)[] = [];
  private failure: Error | undefined;
  private readonly progress = new Map<ChildProcess, { clients: number; ready: number; streamErrors: number; firstError?: string }>();

  private constructor(readonly clients: number) {}

  /** Starts `clients` clients against 127.0.0.1:`port`; resolves once every one of
   *  them has ACKed its first EDS and RDS responses, with the time that took. */
  static async connect(clients: number, mode: 'sotw' | 'delta', port: number, services: number, timeoutMs = 300_000) {
    const fleet = new ClientFleet(clients);
    const started = performance.now();
    const processes = Math.ceil(clients / CLIENTS_PER_PROCESS);
    for (let p = 0; p < processes; p++) {
      const first = Math.floor((p * clients) / processes);
      const count = Math.floor(((p + 1) * clients) / processes) - first;
      // Each client holds a socket: raise the soft fd limit to the hard one (node's
      // IPC channel fd and NODE_CHANNEL_FD survive the exec).
      const args = ['--import', 'tsx', '--max-old-space-size=4096', path.join(here, 'clients.ts'), String(first), String(count), mode, String(port), String(services)];
      const child = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)"; exec "$@"', 'sh', process.execPath, ...args], {
        cwd: path.resolve(here, '../..'),
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      fleet.children.push(child);
      fleet.inbox.set(child, []);
      child.on('message', (m: any) => {
        if (m.progress) return void fleet.progress.set(child, m.progress);
        fleet.inbox.get(child)!.push(m);
        fleet.wake();
      });
      child.once('exit', (code, signal) => {
        fleet.failure ??= new Error(`bench: a client process exited (${code ?? signal})`);
        fleet.wake();
      });
    }
    const report = setInterval(() => process.stderr.write(`bench: peer:   connecting: ${fleet.describeProgress()}\n`), 30_000);
    try {
      await fleet.fromEach('ready', timeoutMs, `${clients} clients to connect and ACK their first EDS and RDS`);
    } catch (err) {
      fleet.close();
      throw new Error(`${(err as Error).message}; ${fleet.describeProgress()}`);
    } finally {
      clearInterval(report);
    }
    return { fleet, connectMs: performance.now() - started, processes, streamsReopened: fleet.streamsReopened() };
  }

  /** Tells every client which address the next change adds; resolves once all know. */
  async arm(address: string): Promise<void> {
    for (const c of this.children) c.send({ arm: { address } });
    await this.fromEach('armed', 30_000, 'the clients to arm');
  }

  /** Waits until every client ACKed an EDS response holding the armed address. */
  async converged(timeoutMs: number): Promise<void> {
    await this.fromEach('converged', timeoutMs, `all ${this.clients} clients to ACK the change`);
  }

  /** What the clients saw since arming, merged over the processes. */
  async collect(): Promise<ClientReport> {
    for (const c of this.children) c.send({ collect: true });
    const reports = (await this.fromEach('report', 60_000, 'the clients to report')).map((m) => m.report as ClientReport);
    const merged: ClientReport = { ackedAt: [], resourceBytes: 0, responses: {}, streamErrors: 0 };
    for (const r of reports) {
      for (const t of r.ackedAt) merged.ackedAt.push(t);
      merged.resourceBytes += r.resourceBytes;
      merged.streamErrors += r.streamErrors;
      for (const [type, n] of Object.entries(r.responses)) merged.responses[type] = (merged.responses[type] ?? 0) + n;
    }
    return merged;
  }

  /** The client processes, for their CPU (/proc): clients that are saturated
   *  slow both servers' convergence alike and hide the difference. */
  get pids(): number[] {
    return this.children.map((c) => c.pid!).filter(Boolean);
  }

  close(): void {
    for (const c of this.children) {
      c.removeAllListeners('exit');
      if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
    }
  }

  /** Streams that failed and were reopened so far (from the children's last progress). */
  streamsReopened(): number {
    return [...this.progress.values()].reduce((a, p) => a + p.streamErrors, 0);
  }

  /** How many clients are ready and how many streams failed, from the children's last progress. */
  describeProgress(): string {
    const all = [...this.progress.values()];
    const ready = all.reduce((a, p) => a + p.ready, 0);
    const errors = this.streamsReopened();
    const first = all.find((p) => p.firstError)?.firstError;
    return `${ready} of ${this.clients} clients ready, ${errors} streams failed and reopened${first ? ` (first: ${first})` : ''}`;
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next message with key `key` from every child (consumed from their inboxes). */
  private async fromEach(key: string, timeoutMs: number, what: string): Promise<any[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.children.every((c) => this.inbox.get(c)!.some((m) => key in m))) {
        return this.children.map((c) => {
          const box = this.inbox.get(c)!;
          return box.splice(box.findIndex((m) => key in m), 1)[0];
        });
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`bench: timed out after ${timeoutMs / 1000} s waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
