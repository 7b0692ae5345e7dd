// The comparator of `strategy: ParallelRun`: an HTTP server in the control-plane
// process that the sidecars mirror the target's requests to (Envoy's
// request_mirror_policies: fire and forget, the answer is discarded). It answers the
// mirror at once (202) and, off the caller's path, sends the request to a stable
// instance (primary), a second stable instance (secondary, for noise) and a candidate
// instance, then compares the three answers (comparator.ts); mTLS with its own mesh
// certificate to instances whose sidecar has one (comparator-identity.ts). One port
// takes both TLS (told apart by the first byte: a handshake record) and plaintext;
// who may mirror over which is mirror-acceptance.ts's rule. Only the methods a run
// allows are forwarded; the rest are counted as skipped. A mirror is forwarded only if
// the AuthorizationPolicies of stable and candidate admit the mirroring sidecar's
// identity (deps.authorize), so the comparator never lends its own to a caller. Everything is bounded:
// concurrent comparisons, queued requests, body sizes; what does not fit is dropped
// and counted.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import client from 'prom-client';
import { Agent, request } from 'undici';
import type { AuthorizationRequest } from '../model/authorization.ts';
import { DEFAULT_TRUST_DOMAIN, PARALLEL_RUN_DEFAULTS, type CanarySpec } from '../model/types.ts';
import type { CanaryPhase, CanaryState, LastAnalysis } from './canary.ts';
import { checkSpiffeIdentity, type ClientTls } from './comparator-identity.ts';
import { Comparison, DEFAULT_COMPARATOR_LIMITS, routeKey, type Answer, type ComparisonReport } from './comparator.ts';
import { acceptMirror, uriSans, type MirrorTransport } from './mirror-acceptance.ts';

type Ref = { service: string; namespace: string };

/** What the comparator needs to know of one ParallelRun in progress. */
export interface ParallelRunTarget {
  /** namespace/name of the Canary. */
  key: string;
  /** Changes when the spec does: the comparison starts over. */
  version: string;
  target: Ref;
  stable: Ref;
  candidate: Ref;
  methods: string[];
  headers: string[];
}

export interface Instance {
  address: string;
  port: number;
  /** Its sidecar has a mesh certificate: speak mTLS, and the peer must be one of these SPIFFE IDs. */
  tls?: { identities: string[] };
}

export interface ComparatorServerLimits {
  /** Comparisons (each three upstream requests) at once. */
  maxConcurrent: number;
  /** Mirrored requests waiting for a comparison slot. */
  maxQueued: number;
  /** Mirrored request body; larger ones are dropped. */
  maxRequestBytes: number;
  /** Upstream answer body; a comparison with a larger one is dropped. */
  maxResponseBytes: number;
  /** Per upstream request, headers and body. */
  timeoutMs: number;
  /** Connections the comparator accepts from sidecars at once. */
  maxConnections: number;
}

export const DEFAULT_COMPARATOR_SERVER_LIMITS: ComparatorServerLimits = {
  maxConcurrent: 32,
  maxQueued: 1000,
  maxRequestBytes: 64 * 1024,
  maxResponseBytes: 1024 * 1024,
  timeoutMs: 10_000,
  maxConnections: 1024,
};

export interface ComparatorDeps {
  /** Healthy instances of a service; `port` is the service port the caller dialled, if it said. */
  instances: (service: Ref, port?: number) => Instance[];
  log: (line: string) => void;
  limits?: Partial<ComparatorServerLimits>;
  /** The comparator's own mesh certificate: it serves mirrors over TLS with it, checks
   *  their client certificates against its trust bundle, and speaks mTLS with it to
   *  instances that take mTLS. Read per connection, so a renewal or a root rotation
   *  applies to the next one. */
  tls?: () => ClientTls | undefined;
  /** Whether a run's mirrors must come over mTLS (some Service of it is STRICT).
   *  Absent: always. */
  mtlsRequired?: (run: ParallelRunTarget) => boolean;
  /** The trust domain a mirroring sidecar's SPIFFE ID must be of. */
  trustDomain?: () => string;
  /** Whether the sidecars of a Service (stable, candidate) would let this request in
   *  from the mirroring sidecar's identity (its AuthorizationPolicies, as their RBAC
   *  does): the comparator forwards only what the caller itself could have sent.
   *  Absent: everything. */
  authorize?: (service: Ref, request: AuthorizationRequest) => boolean;
}

/** Why a mirrored request was not compared. */
export type DropReason =
  | 'queue_full'
  | 'request_too_large'
  | 'response_too_large'
  | 'no_instances'
  | 'upstream_error'
  | 'no_certificate'
  | 'unknown_host'
  | 'ambiguous_host'
  /** Plaintext mirror for a run that takes mirrors only over mTLS (403). */
  | 'mtls_required'
  /** TLS without a client certificate of the mesh (403). */
  | 'untrusted_client'
  /** An AuthorizationPolicy of stable or candidate would refuse the mirroring identity
   *  (or plaintext) this request: not forwarded (the caller still gets 202). */
  | 'denied_by_policy';

/** Distinct mirroring identities recorded per run; the rest are counted as OTHER_PEER. */
const MAX_PEERS = 32;
export const PLAINTEXT_PEER = '(plaintext)';
export const OTHER_PEER = '(other identities)';

export interface ParallelRunStatus extends ComparisonReport {
  /** False once the run is over: the report is final. */
  comparing: boolean;
  /** Mirrored requests whose method the run does not compare (never forwarded), by method. */
  skipped: Record<string, number>;
  /** Mirrored requests not compared, by reason. */
  dropped: Partial<Record<DropReason, number>>;
  /** When this comparison started (the run, or its spec's last change). */
  startedAt: string;
  /** Accepted mirrors by the SPIFFE ID of the sidecar that sent them (PLAINTEXT_PEER without mTLS). */
  mirroredBy?: Record<string, number>;
}

interface Run {
  spec: ParallelRunTarget;
  comparison: Comparison;
  skipped: Record<string, number>;
  dropped: Partial<Record<DropReason, number>>;
  startedAt: string;
  mirroredBy: Record<string, number>;
  next: number;
  /** False once the run is over (promoted, rolled back): its report stays. */
  active: boolean;
}

interface Job {
  run: Run;
  method: string;
  url: string;
  headers: Record<string, string | string[]>;
  body: Buffer;
  port?: number;
  /** The mirroring sidecar's SPIFFE ID (it came over mTLS): only then does the
   *  comparator forward with its own mesh certificate. */
  peer?: string;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'expect']);

export class ComparatorServer {
  readonly limits: ComparatorServerLimits;
  private readonly runs = new Map<string, Run>();
  private readonly queue: Job[] = [];
  private active = 0;
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private tlsServer?: https.Server;
  private httpServers: http.Server[] = [];
  /** The certificate the TLS side serves now. */
  private serverMaterial?: ClientTls;
  private readonly agent: Agent;
  /** mTLS agents, one per set of peer identities, for the certificate they were made with. */
  private tlsAgents = new Map<string, Agent>();
  private tlsMaterial?: ClientTls;
  /** Drops with no run to charge them to (unknown host), and every drop, for /metrics. */
  readonly dropped: Partial<Record<DropReason, number>> = {};

  constructor(private readonly deps: ComparatorDeps) {
    this.limits = { ...DEFAULT_COMPARATOR_SERVER_LIMITS, ...deps.limits };
    this.agent = new Agent(this.agentOptions());
  }

  /** The runs in progress; a new one, or one whose version changed, starts from
   *  nothing. A finished run named in `retain` keeps its report but compares no more. */
  setRuns(targets: ParallelRunTarget[], retain: string[] = []): void {
    const active = new Set(targets.map((t) => t.key));
    const kept = new Set(retain);
    for (const [key, run] of [...this.runs]) {
      run.active = active.has(key);
      if (!run.active && !kept.has(key)) this.runs.delete(key);
    }
    for (const spec of targets) {
      const run = this.runs.get(spec.key);
      if (run && run.spec.version === spec.version) {
        run.spec = spec;
        continue;
      }
      this.runs.set(spec.key, {
        spec,
        comparison: new Comparison(spec.headers, DEFAULT_COMPARATOR_LIMITS),
        skipped: {},
        dropped: {},
        startedAt: new Date().toISOString(),
        mirroredBy: {},
        next: 0,
        active: true,
      });
    }
  }

  status(key: string): ParallelRunStatus | undefined {
    const run = this.runs.get(key);
    if (!run) return undefined;
    return { ...run.comparison.report(), comparing: run.active, skipped: { ...run.skipped }, dropped: { ...run.dropped }, startedAt: run.startedAt, mirroredBy: { ...run.mirroredBy } };
  }

  keys(): string[] {
    return [...this.runs.keys()];
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.queue.length;
  }

  async listen(port: number, address: string): Promise<number> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.receive(req, res);
    const plain = http.createServer(handler);
    // The client certificate is checked here and judged per request (receive), so a
    // refusal is a clear 403 and a counted reason, not a failed handshake.
    const secure = https.createServer({ requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler);
    for (const s of [plain, secure]) {
      s.keepAliveTimeout = 60_000;
      s.headersTimeout = 10_000;
      s.requestTimeout = 30_000;
      // They get their connections from the port below and never listen themselves;
      // 'listening' starts the checks that enforce headersTimeout and requestTimeout.
      s.emit('listening');
    }
    this.httpServers = [plain, secure];
    this.tlsServer = secure;
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      // A reset before the first byte must not go unhandled.
      socket.on('error', () => socket.destroy());
      socket.setTimeout(10_000, () => socket.destroy());
      socket.once('readable', () => {
        socket.setTimeout(0);
        const first = socket.read(1) as Buffer | null;
        if (!first) {
          socket.destroy();
          return;
        }
        socket.unshift(first);
        // 0x16: a TLS handshake record. No certificate yet (the CA is not open): no TLS.
        if (first[0] !== 0x16) plain.emit('connection', socket);
        else if (this.refreshServerTls()) secure.emit('connection', socket);
        else socket.destroy();
      });
    });
    // Bodies being read are bounded per request (maxRequestBytes) and in number here.
    server.maxConnections = this.limits.maxConnections;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => resolve());
    });
    return (server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    this.queue.length = 0;
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of this.sockets) socket.destroy();
      });
    }
    for (const s of this.httpServers) s.close();
    await Promise.all([this.agent, ...this.tlsAgents.values()].map((a) => a.close().catch(() => {})));
  }

  /** How the comparator calls instances, in plaintext or mTLS: bounded by its timeout. */
  private agentOptions(): Agent.Options {
    return { connections: 64, headersTimeout: this.limits.timeoutMs, bodyTimeout: this.limits.timeoutMs, keepAliveTimeout: 10_000 };
  }

  /** The TLS side serves the current certificate and trusts the current bundle; false
   *  while there is none. */
  private refreshServerTls(): boolean {
    const material = this.deps.tls?.();
    if (!material || !this.tlsServer) return false;
    if (material !== this.serverMaterial) {
      this.tlsServer.setSecureContext({ key: material.key, cert: material.cert, ca: material.ca });
      this.serverMaterial = material;
    }
    return true;
  }

  /** The mTLS agent for peers with these identities, made again when the certificate
   *  or trust bundle changed. */
  private tlsAgent(identities: string[]): Agent | undefined {
    const material = this.deps.tls?.();
    if (!material) return undefined;
    if (material !== this.tlsMaterial) {
      for (const old of this.tlsAgents.values()) old.close().catch(() => {});
      this.tlsAgents = new Map();
      this.tlsMaterial = material;
    }
    const key = identities.join(',');
    let agent = this.tlsAgents.get(key);
    if (!agent) {
      agent = new Agent({
        ...this.agentOptions(),
        connect: { key: material.key, cert: material.cert, ca: material.ca, rejectUnauthorized: true, checkServerIdentity: checkSpiffeIdentity(identities) },
      });
      this.tlsAgents.set(key, agent);
    }
    return agent;
  }

  private drop(run: Run | undefined, reason: DropReason): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1;
    if (run) run.dropped[reason] = (run.dropped[reason] ?? 0) + 1;
  }

  /** A mirrored request: answered at once, compared later if it fits. */
  private receive(req: http.IncomingMessage, res: http.ServerResponse): void {
    const done = (status: number) => {
      if (!res.headersSent) res.writeHead(status, { 'content-length': '0' }).end();
    };
    const { run, port, problem } = this.resolve(req.headers.host ?? '');
    const method = (req.method ?? 'GET').toUpperCase();
    const verdict = acceptMirror(
      transportOf(req),
      { key: run?.spec.key ?? '', mtlsRequired: run ? (this.deps.mtlsRequired?.(run.spec) ?? true) : false },
      this.deps.trustDomain?.() ?? DEFAULT_TRUST_DOMAIN,
    );
    if (!verdict.accept) {
      this.drop(run, verdict.reason);
      req.resume();
      if (!res.headersSent) res.writeHead(403, { 'content-type': 'text/plain', connection: 'close' }).end(`${verdict.message}\n`);
      return;
    }
    if (!run) {
      this.drop(undefined, problem ?? 'unknown_host');
      req.resume();
      done(404);
      return;
    }
    const peer = verdict.peer ?? PLAINTEXT_PEER;
    const known = peer in run.mirroredBy || Object.keys(run.mirroredBy).length < MAX_PEERS ? peer : OTHER_PEER;
    run.mirroredBy[known] = (run.mirroredBy[known] ?? 0) + 1;
    if (!run.spec.methods.includes(method)) {
      run.skipped[method] = (run.skipped[method] ?? 0) + 1;
      req.resume();
      done(202);
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > this.limits.maxRequestBytes) {
      this.drop(run, 'request_too_large');
      req.resume();
      done(413);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.limits.maxRequestBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('error', () => done(400));
    req.on('end', () => {
      if (tooLarge) {
        this.drop(run, 'request_too_large');
        done(413);
        return;
      }
      done(202);
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      }
      this.enqueue({ run, method, url: req.url ?? '/', headers, body: Buffer.concat(chunks), port, peer: verdict.peer });
    });
  }

  /** The run a mirrored request belongs to, by its Host: the target Service as the
   *  caller spelt it (`reviews`, `reviews:9080`, `reviews.default.svc.cluster.local`). */
  private resolve(host: string): { run?: Run; port?: number; problem?: DropReason } {
    const m = /^(.*?)(?::(\d+))?$/.exec(host.trim().toLowerCase())!;
    const port = m[2] ? Number(m[2]) : undefined;
    const parts = m[1].replace(/\.svc(\.cluster\.local)?$/, '').split('.');
    if (parts.length > 2) return { problem: 'unknown_host' };
    const [name, namespace] = parts;
    const matches = [...this.runs.values()].filter((r) => r.active && r.spec.target.service === name && (namespace === undefined || r.spec.target.namespace === namespace));
    if (matches.length === 0) return { problem: 'unknown_host' };
    // A short name means the caller's own namespace, which the comparator cannot see.
    if (matches.length > 1) return { problem: 'ambiguous_host' };
    return { run: matches[0], port };
  }

  private enqueue(job: Job): void {
    if (this.active < this.limits.maxConcurrent) {
      this.start(job);
      return;
    }
    if (this.queue.length >= this.limits.maxQueued) {
      this.drop(job.run, 'queue_full');
      return;
    }
    this.queue.push(job);
  }

  private start(job: Job): void {
    this.active++;
    this.compare(job)
      .catch((err: Error) => this.deps.log(`parallel run ${job.run.spec.key}: comparison failed: ${err.message}`))
      .finally(() => {
        this.active--;
        const next = this.queue.shift();
        if (next) this.start(next);
      });
  }

  private async compare(job: Job): Promise<void> {
    const { run } = job;
    const stable = this.deps.instances(run.spec.stable, job.port);
    const candidates = this.deps.instances(run.spec.candidate, job.port);
    if (stable.length === 0 || candidates.length === 0) {
      this.drop(run, 'no_instances');
      return;
    }
    // Round robin; with two or more stable instances primary and secondary differ.
    const i = run.next++;
    const primary = stable[i % stable.length];
    const secondary = stable[(i + 1) % stable.length];
    const candidate = candidates[i % candidates.length];
    // Not a confused deputy: forwarded only if every instance called would let the
    // mirroring sidecar (not the comparator) send this request itself.
    const allowed = (to: Instance, service: Ref) =>
      this.deps.authorize?.(service, { principal: job.peer, method: job.method, path: job.url, headers: job.headers, port: to.port }) ?? true;
    if (!allowed(primary, run.spec.stable) || !allowed(secondary, run.spec.stable) || !allowed(candidate, run.spec.candidate)) {
      this.drop(run, 'denied_by_policy');
      return;
    }
    if (job.peer && [primary, secondary, candidate].some((to) => to.tls) && !this.deps.tls?.()) {
      this.drop(run, 'no_certificate');
      return;
    }
    const answers = await Promise.all([primary, secondary, candidate].map((to) => this.forward(to, job)));
    if (answers.some((a) => a === 'too_large')) {
      this.drop(run, 'response_too_large');
      return;
    }
    if (answers.some((a) => a === 'error')) {
      this.drop(run, 'upstream_error');
      return;
    }
    const [p, s, c] = answers as Answer[];
    // The run may have been replaced (spec change) while this comparison was out.
    if (this.runs.get(run.spec.key) !== run || !run.active) return;
    run.comparison.add(routeKey(job.method, job.url), `${job.method} ${job.url.slice(0, 200)}`, p, s, c);
  }

  private async forward(to: Instance, job: Job): Promise<Answer | 'too_large' | 'error'> {
    const host = to.address.includes(':') ? `[${to.address}]` : to.address;
    // The comparator's mesh identity only for a mirror that came with one.
    const tls = job.peer ? to.tls : undefined;
    const dispatcher = tls ? this.tlsAgent(tls.identities) : this.agent;
    if (!dispatcher) return 'error';
    try {
      const res = await request(`${tls ? 'https' : 'http'}://${host}:${to.port}${job.url}`, {
        method: job.method as 'GET',
        headers: job.headers,
        body: job.body.length > 0 ? job.body : undefined,
        dispatcher,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > this.limits.maxResponseBytes) {
          res.body.destroy();
          return 'too_large';
        }
        chunks.push(chunk as Buffer);
      }
      return { status: res.statusCode, headers: res.headers as Answer['headers'], body: Buffer.concat(chunks) };
    } catch {
      return 'error';
    }
  }
}

/** TLS or not, and the client certificate if TLS. */
function transportOf(req: http.IncomingMessage): MirrorTransport {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted) return { tls: false };
  const cert = socket.getPeerCertificate();
  const presented = cert && Object.keys(cert).length > 0;
  return {
    tls: true,
    authorized: presented && socket.authorized,
    error: presented ? String(socket.authorizationError ?? '') || undefined : 'no client certificate',
    uris: presented ? uriSans(cert.subjectaltname) : [],
  };
}

/** The comparator's part of a Canary spec, for `ComparatorServer.setRuns`. */
export function parallelRunTarget(spec: CanarySpec, version: string): ParallelRunTarget {
  return {
    key: `${spec.namespace}/${spec.name}`,
    version,
    target: spec.target,
    stable: spec.stable,
    candidate: spec.canary,
    methods: spec.parallelRun?.methods ?? [...PARALLEL_RUN_DEFAULTS.methods],
    headers: spec.parallelRun?.headers ?? [...PARALLEL_RUN_DEFAULTS.headers],
  };
}

export interface MismatchVerdict {
  result: 'passed' | 'failed' | 'waiting';
  compared: number;
  mismatchPercent: number | null;
  message: string;
}

/** Judges a parallel run on everything compared since it started. Without
 *  maxMismatchPercent it only reports (never passes or fails). */
export function judgeMismatch(analysis: CanarySpec['analysis'], report: ComparisonReport): MismatchVerdict & { reportOnly: boolean } {
  const { compared, mismatchPercent } = report;
  const max = analysis.maxMismatchPercent;
  const base = { compared, mismatchPercent };
  const worst = report.routes.flatMap((r) => r.fields.map((f) => f.field)).slice(0, 3);
  const fields = worst.length > 0 ? `; differing: ${worst.join(', ')}` : '';
  const numbers = `${mismatchPercent ?? 0}% of ${compared} compared requests differ${fields}`;
  const needed = Math.max(1, analysis.minRequests);
  if (max === undefined) return { ...base, reportOnly: true, result: 'waiting', message: compared > 0 ? `reporting: ${numbers}` : 'reporting: nothing compared yet' };
  if (compared < needed) return { ...base, reportOnly: false, result: 'waiting', message: `waiting for traffic: ${compared}/${needed} compared requests` };
  if ((mismatchPercent ?? 0) > max) return { ...base, reportOnly: false, result: 'failed', message: `mismatch ${mismatchPercent}% > ${max}%: ${numbers}` };
  return { ...base, reportOnly: false, result: 'passed', message: `mismatch ${mismatchPercent}% <= ${max}% over ${compared} compared requests` };
}

/** What the Canary controller needs of the comparator. */
export interface ParallelRunComparator {
  setRuns(targets: ParallelRunTarget[], retain?: string[]): void;
  status(key: string): ParallelRunStatus | undefined;
  /** Where sidecars reach it. */
  readonly address: { address: string; port: number };
}

/** While a ParallelRun is in progress (or paused) its requests are mirrored and compared. */
export const comparing = (spec: CanarySpec, phase: CanaryPhase | undefined): boolean =>
  spec.strategy === 'ParallelRun' && (phase === undefined || phase === 'Progressing' || phase === 'Paused');

/** One ParallelRun analysis: the next state, from what was compared since the run
 *  started. Passing promotes (all traffic to the candidate); failing `failureLimit`
 *  times rolls back (mirroring stops); report-only runs stay in progress. */
export function judgeParallelRun(
  spec: CanarySpec,
  state: CanaryState,
  status: ParallelRunStatus | undefined,
  now: number,
): { next: CanaryState; reason: string } {
  const report = status ?? { compared: 0, mismatched: 0, mismatchPercent: null, routes: [] };
  const verdict = judgeMismatch(spec.analysis, report);
  const at = new Date(now).toISOString();
  const last: LastAnalysis = {
    result: verdict.result,
    requests: verdict.compared,
    errors5xx: 0,
    successRate: null,
    p99Ms: null,
    message: verdict.message,
    mismatchPercent: verdict.mismatchPercent,
    at,
    windowSeconds: Math.round((now - Date.parse(status?.startedAt ?? at)) / 100) / 10,
    step: 1,
    weight: state.weight,
    stable: { requests: 0, successRate: null, p99Ms: null },
  };
  const next: CanaryState = { ...state, lastAnalysis: last, windowStart: now, updatedAt: at };
  if (!status) {
    next.message = 'no comparator: start the control plane with --comparator-port; nothing is mirrored or compared';
  } else if (verdict.result === 'waiting') {
    next.message = `parallel run against ${spec.canary.service}: ${verdict.message}`;
  } else if (verdict.result === 'failed') {
    next.failures = state.failures + 1;
    if (next.failures >= spec.analysis.failureLimit) {
      Object.assign(next, { phase: 'RolledBack', weight: 0, stepStartedAt: at });
      next.message = `rolled back after ${next.failures}/${spec.analysis.failureLimit} failed analyses: ${verdict.message}`;
    } else {
      next.message = `parallel run: analysis failed (${next.failures}/${spec.analysis.failureLimit}): ${verdict.message}`;
    }
  } else {
    Object.assign(next, { phase: 'Promoted', weight: 100, stepStartedAt: at });
    next.message = `promoted: all traffic to ${spec.canary.service} (${verdict.message})`;
  }
  return { next, reason: verdict.message };
}

/** /metrics: per ParallelRun and route, read at scrape time; the comparator's own
 *  queue and drops. Route labels are bounded by the comparator's route limit. */
export function registerParallelRunMetrics(registry: client.Registry, comparator: ComparatorServer): void {
  const each = (fn: (canary: string, s: ParallelRunStatus) => void) => {
    for (const key of comparator.keys()) {
      const s = comparator.status(key);
      if (s) fn(key, s);
    }
  };
  /** A gauge filled afresh from the comparator's reports at each scrape. */
  const scrapedGauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Record<L, string>, value: number) => void) => void) =>
    new client.Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill((labels, value) => this.set(labels, value));
      },
    });
  scrapedGauge('tessera_parallel_run_compared', 'Mirrored requests compared (primary, secondary, candidate) per ParallelRun and route, since the run started', ['canary', 'route'], (set) =>
    each((canary, s) => {
      for (const r of s.routes) set({ canary, route: r.route }, r.compared);
    }),
  );
  scrapedGauge('tessera_parallel_run_mismatched', 'Compared requests whose candidate answer differed from stable beyond noise, per ParallelRun and route', ['canary', 'route'], (set) =>
    each((canary, s) => {
      for (const r of s.routes) set({ canary, route: r.route }, r.mismatched);
    }),
  );
  scrapedGauge('tessera_parallel_run_mismatch_ratio', 'Mismatched / compared over the whole ParallelRun', ['canary'], (set) =>
    each((canary, s) => {
      if (s.mismatchPercent !== null) set({ canary }, s.mismatchPercent / 100);
    }),
  );
  scrapedGauge('tessera_parallel_run_skipped', 'Mirrored requests not compared because the ParallelRun does not allow their method (never forwarded)', ['canary', 'method'], (set) =>
    each((canary, s) => {
      for (const [method, n] of Object.entries(s.skipped)) set({ canary, method }, n);
    }),
  );
  new client.Counter({
    name: 'tessera_parallel_run_dropped_total',
    help: 'Mirrored requests the comparator dropped, by reason (queue_full, request_too_large, response_too_large, no_instances, upstream_error, no_certificate, unknown_host, ambiguous_host, mtls_required, untrusted_client, denied_by_policy)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(comparator.dropped)) this.inc({ reason }, n ?? 0);
    },
  });
  new client.Gauge({
    name: 'tessera_parallel_run_in_flight',
    help: 'Comparisons under way and mirrored requests queued for one',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.set({ state: 'running' }, comparator.inFlight);
      this.set({ state: 'queued' }, comparator.queued);
    },
  });
}
