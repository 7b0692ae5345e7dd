// The two servers under test, each its own process started the same way, with a
// trigger per change path. Both print {"xdsPort",…} as their first stdout line.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ENDPOINT_PORT, MeshConfigDir, serviceName } from './mesh-config.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
/** Outside git (.gitignore): the built Go peer, config dirs and server logs. */
export const cacheDir = path.join(repo, 'bench', '.cache');

export interface ServerUnderTest {
  name: 'go-control-plane' | 'tessera';
  pid: number;
  xdsPort: number;
  /** Change paths: each adds endpoint `address` to service `s`. */
  triggers: Record<string, (s: number, address: string) => Promise<void>>;
  log: string;
  stop(): Promise<void>;
}

/** Builds the Go peer (bench/peer/go) into the cache dir. Needs Go and the Go module
 *  proxy on first build; later builds reuse Go's build cache and take seconds. */
export function buildGoPeer(): string {
  const out = path.join(cacheDir, 'peer-go-control-plane');
  const go = findGo();
  fs.mkdirSync(cacheDir, { recursive: true });
  try {
    execFileSync(go, ['build', '-o', out, '.'], { cwd: path.join(here, 'go'), stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new Error(`bench: building the go-control-plane peer in bench/peer/go failed (needs Go and the Go module proxy): ${(err as Error).message}`);
  }
  return out;
}

function findGo(): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/local/go/bin']) {
    const candidate = path.join(dir, 'go');
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  throw new Error('bench: `go` not found on PATH or in /usr/local/go/bin; the --peer benchmark builds go-control-plane with it');
}

export async function startGoPeer(binary: string, services: number, perService: number): Promise<ServerUnderTest> {
  const p = await startServer('go-control-plane', binary, ['-services', String(services), '-endpoints', String(perService)]);
  const httpPort = p.ports.httpPort;
  return {
    name: 'go-control-plane',
    pid: p.child.pid!,
    xdsPort: p.ports.xdsPort,
    log: p.log,
    stop: p.stop,
    triggers: {
      http: async (s, address) => {
        const res = await fetch(`http://127.0.0.1:${httpPort}/add-endpoint?service=${serviceName(s)}&address=${address}`, { method: 'POST' });
        if (!res.ok) throw new Error(`bench: go peer refused the change: ${res.status} ${await res.text()}`);
      },
    },
  };
}

export async function startTessera(services: number, perService: number): Promise<ServerUnderTest> {
  // Made by the go peer's build too, but a run of Tessera alone (BENCH_PEER_CLIENTS=0) has none.
  fs.mkdirSync(cacheDir, { recursive: true });
  const config = new MeshConfigDir(fs.mkdtempSync(path.join(cacheDir, 'tessera-config-')), services, perService);
  const p = await startServer('tessera', process.execPath, ['--import', 'tsx', path.join(here, 'tessera-server.ts'), config.dir]);
  const adminPort = p.ports.adminPort;
  let registered = 0;
  return {
    name: 'tessera',
    pid: p.child.pid!,
    xdsPort: p.ports.xdsPort,
    log: p.log,
    async stop() {
      await p.stop();
      fs.rmSync(config.dir, { recursive: true, force: true });
    },
    triggers: {
      // The admin API listens on loopback, where registry changes need no token.
      registry: async (s, address) => {
        const url = `http://127.0.0.1:${adminPort}/api/v1/services/${serviceName(s)}/instances/bench-added-${registered++}`;
        const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ address, port: ENDPOINT_PORT }) });
        if (!res.ok) throw new Error(`bench: Tessera refused the registration: ${res.status} ${await res.text()}`);
      },
      file: async (s, address) => config.addEndpoint(s, address),
    },
  };
}

async function startServer(name: string, cmd: string, args: string[]) {
  fs.mkdirSync(cacheDir, { recursive: true });
  const log = path.join(cacheDir, `${name}.log`);
  const logFd = fs.openSync(log, 'w');
  // Each stream is a file descriptor: raise the soft limit to the hard one.
  const child: ChildProcess = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)"; exec "$@"', 'sh', cmd, ...args], {
    cwd: repo,
    stdio: ['ignore', 'pipe', logFd],
  });
  fs.closeSync(logFd);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && child.pid && process.kill(child.pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  killOnExit.add(child);
  const lines = readline.createInterface({ input: child.stdout! });
  const ports = await new Promise<Record<string, number>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bench: ${name} did not start within 60 s; see ${log}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`bench: ${name} exited (${code}) before listening; see ${log}`)));
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line));
    });
  });
  return { child, ports, log, stop };
}

const killOnExit = new Set<ChildProcess>();
// Ctrl-C or a kill of the harness still stops the servers (the 'exit' handler runs).
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));
process.once('exit', () => {
  for (const c of killOnExit) if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
});
