// Running a real Envoy from a bootstrap: used by the example mesh, the sidecar
// agent and the tests.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';

export function findEnvoy(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v envoy'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

let setprivPath: string | null | undefined;
function findSetpriv(): string | undefined {
  if (setprivPath === undefined) {
    try {
      setprivPath = execFileSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).trim() || null;
    } catch {
      setprivPath = null;
    }
  }
  return setprivPath ?? undefined;
}

export interface EnvoyHandle {
  child: ChildProcess;
  adminUrl: string;
  bootstrapPath: string;
  /** Resolves once Envoy's admin /ready says LIVE (initial config fetched). */
  ready(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export function runEnvoy(opts: {
  envoy: string;
  // biome-ignore lint/suspicious/noExplicitAny: a bootstrap this package built (sidecar/bootstrap)
  bootstrap: Record<string, any>;
  workDir: string;
  logLevel?: string;
  stdio?: 'inherit' | 'pipe' | 'ignore';
  /** How long Envoy's graceful listener drain lasts (--drain-time-s); default 2. */
  drainTimeS?: number;
  /** Run Envoy under this identity (the capture rules exclude the proxy's uid and gid). */
  uid?: number;
  gid?: number;
}): EnvoyHandle {
  fs.mkdirSync(opts.workDir, { recursive: true });
  const bootstrapPath = path.join(opts.workDir, 'envoy-bootstrap.json');
  fs.writeFileSync(bootstrapPath, JSON.stringify(opts.bootstrap, null, 2));
  if (opts.uid !== undefined) {
    // Envoy runs under another uid: it must be able to read its bootstrap.
    fs.chmodSync(opts.workDir, 0o755);
    fs.chmodSync(bootstrapPath, 0o644);
  }
  const admin = opts.bootstrap.admin.address.socket_address;
  const adminUrl = `http://${admin.address}:${admin.port_value}`;
  // No hot restart: several Envoys share a machine without --base-id juggling.
  const envoyArgs = ['-c', bootstrapPath, '--disable-hot-restart', '--concurrency', '1', '-l', opts.logLevel ?? 'warning', '--drain-time-s', String(opts.drainTimeS ?? 2)];
  // Envoy must not outlive whoever started it (an agent killed with SIGKILL would
  // leave it serving a stale instance): setpriv asks the kernel for SIGTERM on
  // parent death, then execs Envoy in the same process.
  const setpriv = findSetpriv();
  const [cmd, args] = setpriv ? [setpriv, ['--pdeathsig', 'SIGTERM', '--', opts.envoy, ...envoyArgs]] : [opts.envoy, envoyArgs];
  const child = spawn(cmd, args, { stdio: ['ignore', opts.stdio ?? 'pipe', opts.stdio ?? 'pipe'], uid: opts.uid, gid: opts.gid });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    adminUrl,
    bootstrapPath,
    async ready(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`envoy exited with ${child.exitCode}`);
        try {
          const res = await request(`${adminUrl}/ready`);
          if (res.statusCode === 200 && (await res.body.text()).trim() === 'LIVE') return;
          await res.body.dump().catch(() => {});
        } catch {
          /* not listening yet */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`envoy at ${adminUrl} not ready after ${timeoutMs} ms`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        process.kill(child.pid, 'SIGTERM');
        const timer = setTimeout(() => child.exitCode === null && child.pid && process.kill(child.pid, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
