// `tessera sidecar` as a subprocess of the bin, on free loopback ports, for e2e tests.
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { tesseraBin } from './mesh.ts';
import { freePort, startProcess, waitFor, type Started } from './processes.ts';

export interface SidecarProcess {
  process: Started;
  statusUrl: string;
  probeUrl: string;
  adminUrl: string;
  /** The read-only Prometheus stats listener (--stats-port, on a free port). */
  statsUrl: string;
  outboundPort: number;
  inboundPort?: number;
  instanceId: string;
  /** GET /ready's status code (0 when the agent does not answer). */
  readyStatus: () => Promise<number>;
  status: () => Promise<{ phase: string; envoyPid?: number; envoyRestarts: number; registered: boolean }>;
  waitReady: (timeoutMs?: number) => Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

export async function startSidecar(
  t: ExecutionContext,
  opts: {
    service: string;
    appPort: number;
    inbound?: boolean;
    controlPlane: { adminPort: number; xdsPort: number };
    instanceId?: string;
    extraArgs?: string[];
    env?: NodeJS.ProcessEnv;
  },
): Promise<SidecarProcess> {
  const [adminPort, statusPort, probePort, outboundPort, statsPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const inboundPort = opts.inbound === false ? undefined : await freePort();
  const instanceId = opts.instanceId ?? `${opts.service}-${inboundPort ?? opts.appPort}`;
  const args = [
    tesseraBin, 'sidecar',
    '--service', opts.service,
    '--app-port', String(opts.appPort),
    '--instance-id', instanceId,
    '--address', '127.0.0.1',
    '--control-plane', `http://127.0.0.1:${opts.controlPlane.adminPort}`,
    '--xds', `127.0.0.1:${opts.controlPlane.xdsPort}`,
    '--admin-port', String(adminPort),
    '--status-port', String(statusPort),
    '--probe-port', String(probePort),
    '--outbound-port', String(outboundPort),
    '--stats-port', String(statsPort),
    ...(inboundPort ? ['--inbound-port', String(inboundPort)] : []),
    ...(opts.extraArgs ?? []),
  ];
  const proc = startProcess(t, process.execPath, args, { env: opts.env });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    proc.child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  t.teardown(() => {
    if (!t.passed) t.log(`sidecar ${instanceId} output:\n${proc.output().slice(-5000)}`);
  });
  const statusUrl = `http://127.0.0.1:${statusPort}`;
  const readyStatus = async () => {
    try {
      const res = await request(`${statusUrl}/ready`);
      await res.body.dump();
      return res.statusCode;
    } catch {
      return 0;
    }
  };
  const status = async () => (await (await request(`${statusUrl}/status`)).body.json()) as any;
  return {
    process: proc,
    statusUrl,
    probeUrl: `http://127.0.0.1:${probePort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    statsUrl: `http://127.0.0.1:${statsPort}`,
    outboundPort,
    inboundPort,
    instanceId,
    readyStatus,
    status,
    exited,
    waitReady: async (timeoutMs = 30_000) => {
      await waitFor(`sidecar ${instanceId} to be ready`, async () => {
        if (proc.child.exitCode !== null) throw new Error(`sidecar exited ${proc.child.exitCode}: ${proc.output()}`);
        return (await readyStatus()) === 200;
      }, timeoutMs).catch((err) => {
        throw new Error(`${err.message}\n${proc.output().slice(-4000)}`);
      });
    },
  };
}

/** Steady load: one request every `everyMs` for `host` through a sidecar's outbound
 *  port, each outcome recorded with its time, until stop() is called. */
export function steadyLoad(port: number, host: string, everyMs = 20) {
  const outcomes: { at: number; status: number | string; backend?: string }[] = [];
  let running = true;
  const inflight = new Set<Promise<void>>();
  const loop = (async () => {
    while (running) {
      const p = (async () => {
        const at = Date.now();
        try {
          const res = await request(`http://127.0.0.1:${port}/`, { headers: { host }, headersTimeout: 10_000, bodyTimeout: 10_000 });
          await res.body.dump();
          outcomes.push({ at, status: res.statusCode, backend: res.headers['x-backend'] as string | undefined });
        } catch (err) {
          outcomes.push({ at, status: (err as Error).message });
        }
      })();
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    outcomes,
    failures: () => outcomes.filter((o) => o.status !== 200),
    stop: async () => {
      running = false;
      await loop;
      await Promise.all(inflight);
    },
  };
}
