// The Canary controller: for each Canary in the config it serves a traffic split for
// the target Service (an overlay on the served model, never the user's files), judges
// the canary backend every interval from what the sidecars report, and moves to the
// next step, waits, counts a failure, rolls back or promotes. In A/B and BlueGreen
// mode the canary gets only test traffic (matching requests or a mirror) while it is
// judged, and all traffic at once after `iterations` passing intervals. A ParallelRun
// mirrors the target's requests to the comparator and is judged by how often the
// candidate's answers differ (parallel-run.ts). Its state lives in the registry's
// store, so a restarted control plane resumes each Canary at its step. A Canary with `analysis.provider.prometheus` is judged from the user's Prometheus
// instead (prometheus.ts): the queries run in the background, and a failed one makes
// the interval wait with the reason, never fail or pass.
import { createHash } from 'node:crypto';
import { PARALLEL_RUN_DEFAULTS, type CanarySpec, type MeshModel, type PrometheusProvider } from '../model/types.ts';
import type { ServiceRef, Totals } from '../telemetry/traffic.ts';
import { analyze, judgeMeasured, type Analysis, type Measured } from './analysis.ts';
import { applySplits, splitTakesEffect, type TrafficSplit } from './overlay.ts';
import { comparing, judgeParallelRun, parallelRunTarget, type ParallelRunComparator, type ParallelRunStatus } from './parallel-run.ts';
import { measureFromPrometheus } from './prometheus.ts';

export type CanaryPhase = 'Progressing' | 'Paused' | 'Promoted' | 'RolledBack';
/** Weighted steps, header-matched A/B, BlueGreen (match or mirror), or a parallel run. */
export type CanaryMode = 'Canary' | 'A/B' | 'BlueGreen' | 'ParallelRun';
export type CanaryAction = 'pause' | 'resume' | 'promote' | 'abort';
export const CANARY_ACTIONS: CanaryAction[] = ['pause', 'resume', 'promote', 'abort'];

export interface LastAnalysis extends Analysis {
  at: string;
  windowSeconds: number;
  /** 1-based step (A/B, BlueGreen: iteration) and the weight the canary had while it was judged. */
  step: number;
  weight: number;
  /** A/B and BlueGreen: the canary's numbers are of the matching requests, or of the mirrored copies. */
  test?: 'match' | 'mirror';
  /** The stable backend over the same window, for comparison. */
  stable: { requests: number; successRate: number | null; p99Ms: number | null };
  /** ParallelRun: percent of compared requests whose candidate answer differed. */
  mismatchPercent?: number | null;
  /** Where the numbers came from (absent in states stored before providers existed: sidecars). */
  provider?: 'sidecars' | 'prometheus';
  /** Why the provider gave no numbers (the analysis then waits). */
  providerError?: string;
}

/** What is stored per Canary (JSON). */
export interface CanaryState {
  specHash: string;
  phase: CanaryPhase;
  /** Index into spec.steps; in A/B and BlueGreen mode, the passed iterations. */
  step: number;
  weight: number;
  failures: number;
  /** Start (ms since epoch) of the window the next analysis judges. */
  windowStart: number;
  stepStartedAt: string;
  message: string;
  lastAnalysis?: LastAnalysis;
  updatedAt: string;
}

export interface CanaryControllerDeps {
  traffic: { destination(to: ServiceRef, since: number, until?: number): Totals; retainAtLeast(ms: number): void };
  /** Publishes the served model again (the overlay changed); throws if it cannot be served. */
  publish: (note: Record<string, unknown>) => void;
  store: { loadState(kind: string): Promise<Map<string, unknown>>; putState(kind: string, key: string, value: unknown): Promise<void> };
  log: (line: string) => void;
  /** The comparator ParallelRuns mirror to (absent: they compare nothing and say so). */
  parallelRuns?: ParallelRunComparator;
  /** Measures a backend over [since, until) from a Prometheus provider (tests fake it). */
  prometheus?: (provider: PrometheusProvider, backend: ServiceRef, since: number, until: number) => Promise<Measured>;
  now?: () => number;
  tickMs?: number;
}

export class CanaryActionError extends Error {
  constructor(
    message: string,
    readonly status: 404 | 409,
  ) {
    super(message);
  }
}

const STATE_KIND = 'canaries';
const keyOf = (c: { namespace: string; name: string }) => `${c.namespace}/${c.name}`;
const modeOf = (spec: CanarySpec): CanaryMode => (spec.strategy === 'ParallelRun' ? 'ParallelRun' : (spec.test?.mode ?? 'Canary'));
const open = (phase: CanaryPhase) => phase === 'Progressing' || phase === 'Paused';
/** A weighted Canary starts at its first step; A/B, BlueGreen and a ParallelRun send the
 *  candidate no share of traffic until promoted. */
const firstWeight = (spec: CanarySpec) => (spec.test || spec.strategy === 'ParallelRun' ? 0 : spec.steps[0]);
/** What the test traffic is, in words. */
function testTraffic(spec: CanarySpec): string {
  const t = spec.test;
  if (!t) return '';
  if (t.mirror) return `a mirror of live traffic`;
  const one = (m: NonNullable<typeof t.match>[number]) => m.headers.map((h) => `${h.name}${h.type === 'Exact' ? '=' : '~'}${h.value}`).join(' and ');
  return `requests with ${(t.match ?? []).map(one).join(' or ')}`;
}
/** Where the Canary stands, for messages: "step 2/4 at 25%" or "iteration 1/3". */
function position(spec: CanarySpec, state: Pick<CanaryState, 'step' | 'weight'>): string {
  if (spec.test) return `iteration ${state.step}/${spec.test.iterations}`;
  if (spec.strategy === 'ParallelRun') return 'the parallel run';
  return `step ${state.step + 1}/${spec.steps.length} at ${state.weight}%`;
}
/** What the proxies are served for a Canary: its weight, whether test traffic goes to it, and
 *  whether its requests are mirrored to the comparator. */
const served = (spec: CanarySpec, state: Pick<CanaryState, 'phase' | 'weight'>) =>
  `${state.weight}${spec.test && open(state.phase) ? '+test' : ''}${comparing(spec, state.phase) ? '+compare' : ''}`;

export function specHash(spec: CanarySpec): string {
  const { source: _source, ...rest } = spec;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16);
}

export class CanaryController {
  private readonly specs = new Map<string, CanarySpec>();
  private readonly states = new Map<string, CanaryState>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private ticking = false;
  /** Canaries whose Prometheus queries are in flight (one analysis at a time each). */
  private readonly querying = new Set<string>();
  /** After close(), answers still in flight are dropped. */
  private closed = false;

  constructor(private readonly deps: CanaryControllerDeps) {
    this.now = deps.now ?? Date.now;
    this.timer = setInterval(() => this.tick(), deps.tickMs ?? 250);
    this.timer.unref();
  }

  /** Reads the stored states; a Progressing Canary restarts its current interval. */
  async load(): Promise<void> {
    for (const [key, value] of await this.deps.store.loadState(STATE_KIND)) {
      const state = value as CanaryState;
      if (state.phase === 'Progressing') state.windowStart = this.now();
      this.states.set(key, state);
    }
  }

  /** Lays the splits over a config model (Reconciler.setOverlay). A Canary without a
   *  state for its current spec starts at its first step. */
  readonly overlay = (config: MeshModel): MeshModel => applySplits(config, this.splitsFor(config.canaries ?? []), this.deps.parallelRuns?.address);

  private splitsFor(specs: CanarySpec[]): TrafficSplit[] {
    return specs.map((spec) => {
      const stored = this.states.get(keyOf(spec));
      const current = stored && stored.specHash === specHash(spec) ? stored : undefined;
      const state = current ?? { weight: firstWeight(spec), phase: 'Progressing' as const };
      const split: TrafficSplit = { name: spec.name, namespace: spec.namespace, target: spec.target, stable: spec.stable, canary: spec.canary, canaryWeight: state.weight };
      // Test traffic only while the canary is judged: promoted it has 100%, rolled back none.
      if (spec.test && open(state.phase)) split.test = { match: spec.test.match, mirror: spec.test.mirror };
      if (comparing(spec, current?.phase)) split.mirror = { percent: spec.parallelRun?.percent ?? PARALLEL_RUN_DEFAULTS.percent };
      return split;
    });
  }

  /** Tells the comparator which ParallelRuns compare now. */
  private syncComparator(): void {
    const runs = [...this.specs.values()].filter((spec) => comparing(spec, this.states.get(keyOf(spec))?.phase));
    const all = [...this.specs.values()].filter((spec) => spec.strategy === 'ParallelRun').map(keyOf);
    this.deps.parallelRuns?.setRuns(runs.map((spec) => parallelRunTarget(spec, specHash(spec))), all);
  }

  /** After a config was applied: new or changed Canaries start over, removed ones are forgotten. */
  sync(model: MeshModel): void {
    const specs = new Map((model.canaries ?? []).map((c) => [keyOf(c), c]));
    for (const key of [...this.states.keys()]) {
      if (!specs.has(key)) {
        this.states.delete(key);
        this.persist(key, undefined);
        this.deps.log(`canary ${key}: removed from the config; its traffic split is no longer served`);
      }
    }
    this.specs.clear();
    for (const [key, spec] of specs) {
      this.specs.set(key, spec);
      this.deps.traffic.retainAtLeast(2 * spec.intervalMs);
      const hash = specHash(spec);
      const state = this.states.get(key);
      if (state?.specHash === hash) continue;
      const now = this.now();
      const fresh: CanaryState = {
        specHash: hash,
        phase: 'Progressing',
        step: 0,
        weight: firstWeight(spec),
        failures: 0,
        windowStart: now,
        stepStartedAt: new Date(now).toISOString(),
        message: spec.test
          ? `${spec.test.mode} iteration 0/${spec.test.iterations}: ${testTraffic(spec)} to ${spec.canary.service}, all other traffic to ${spec.stable.service}`
          : spec.strategy === 'ParallelRun'
            ? `parallel run: ${spec.stable.service} answers, ${spec.canary.service} is compared on mirrored requests`
            : `step 1/${spec.steps.length}: ${spec.steps[0]}% to ${spec.canary.service}`,
        updatedAt: new Date(now).toISOString(),
      };
      if (!splitTakesEffect(model, spec)) {
        fresh.message = `no rule of the routes for ${spec.target.service} sends to ${spec.stable.service}: the split changes nothing`;
      }
      this.states.set(key, fresh);
      this.persist(key, fresh);
      const start = spec.test ? `${spec.test.mode}, ${testTraffic(spec)} to ${spec.canary.service}` : `${fresh.weight}% to ${spec.canary.service}`;
      this.deps.log(`canary ${key}: ${state ? 'spec changed, starting over' : 'started'} at ${start}`);
    }
    this.syncComparator();
  }

  /** Judges every Progressing Canary whose interval is over. */
  tick(): void {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const now = this.now();
      for (const [key, spec] of this.specs) {
        const state = this.states.get(key);
        if (state?.phase !== 'Progressing' || now - state.windowStart < spec.intervalMs) continue;
        this.judge(key, spec, state, now);
      }
    } finally {
      this.ticking = false;
    }
  }

  private judge(key: string, spec: CanarySpec, state: CanaryState, now: number): void {
    if (spec.strategy === 'ParallelRun') {
      const { next, reason } = judgeParallelRun(spec, state, this.deps.parallelRuns?.status(key), now);
      this.commit(key, spec, state, next, reason);
      return;
    }
    const provider = spec.analysis.provider?.prometheus;
    if (provider) {
      this.judgeFromPrometheus(key, spec, state, now, provider);
      return;
    }
    const canary = this.deps.traffic.destination(spec.canary, state.windowStart, now + 1);
    const stable = this.deps.traffic.destination(spec.stable, state.windowStart, now + 1);
    this.decide(key, spec, state, now, analyze(spec.analysis, canary), analyze({ minRequests: 0, failureLimit: 1 }, stable), 'sidecars');
  }

  /** Asks the provider for both backends over the window, then decides as from the
   *  sidecars' numbers. A failed query waits with its reason. An answer that comes back
   *  after the Canary moved on (by hand, a new spec) is dropped. */
  private judgeFromPrometheus(key: string, spec: CanarySpec, state: CanaryState, now: number, provider: PrometheusProvider): void {
    if (this.querying.has(key)) return;
    this.querying.add(key);
    const measure = this.deps.prometheus ?? measureFromPrometheus;
    const none: Measured = { requests: 0, errors5xx: 0, p99Ms: null };
    Promise.all([measure(provider, spec.canary, state.windowStart, now), measure(provider, spec.stable, state.windowStart, now)])
      .then(
        ([canary, stable]) => ({ verdict: judgeMeasured(spec.analysis, canary), stable: judgeMeasured({ minRequests: 0, failureLimit: 1 }, stable), error: undefined }),
        (err: Error) => {
          const error = err.message || String(err);
          const verdict: Analysis = { ...judgeMeasured(spec.analysis, none), result: 'waiting', message: `waiting, no metrics: ${error}` };
          return { verdict, stable: judgeMeasured({ minRequests: 0, failureLimit: 1 }, none), error };
        },
      )
      .then(({ verdict, stable, error }) => {
        if (this.closed || this.states.get(key) !== state || !this.specs.has(key)) return;
        this.decide(key, spec, state, now, verdict, stable, 'prometheus', error);
      })
      .catch((err: Error) => this.deps.log(`canary ${key}: analysis from prometheus not applied: ${err.message}`))
      .finally(() => this.querying.delete(key));
  }

  private decide(key: string, spec: CanarySpec, state: CanaryState, now: number, verdict: Analysis, stableVerdict: Analysis, provider: 'sidecars' | 'prometheus', providerError?: string): void {
    const last: LastAnalysis = {
      ...verdict,
      at: new Date(now).toISOString(),
      windowSeconds: Math.round((now - state.windowStart) / 100) / 10,
      step: state.step + 1,
      weight: state.weight,
      ...(spec.test ? { test: spec.test.mirror ? ('mirror' as const) : ('match' as const) } : {}),
      stable: { requests: stableVerdict.requests, successRate: stableVerdict.successRate, p99Ms: stableVerdict.p99Ms },
      provider,
      ...(providerError ? { providerError } : {}),
    };
    const next: CanaryState = { ...state, lastAnalysis: last, windowStart: now, updatedAt: last.at };
    const steps = spec.steps.length;
    const at = position(spec, state);
    if (verdict.result === 'waiting') {
      next.message = `${at}: ${verdict.message}`;
    } else if (verdict.result === 'failed') {
      next.failures = state.failures + 1;
      if (next.failures >= spec.analysis.failureLimit) {
        Object.assign(next, { phase: 'RolledBack', weight: 0, stepStartedAt: last.at });
        const removed = spec.test ? `; ${testTraffic(spec)} no longer go${spec.test.mirror ? 'es' : ''} to ${spec.canary.service}` : '';
        next.message = `rolled back after ${next.failures}/${spec.analysis.failureLimit} failed analyses: ${verdict.message}${removed}`;
      } else {
        next.message = `${at}: analysis failed (${next.failures}/${spec.analysis.failureLimit}): ${verdict.message}`;
      }
    } else if (spec.test) {
      // A/B and BlueGreen: count passing intervals, then everything at once (never a weight in between).
      next.step = state.step + 1;
      if (next.step >= spec.test.iterations) {
        Object.assign(next, { phase: 'Promoted', weight: 100, stepStartedAt: last.at });
        next.message = `promoted: all traffic to ${spec.canary.service} (iteration ${next.step}/${spec.test.iterations} passed: ${verdict.message})`;
      } else {
        next.message = `iteration ${next.step}/${spec.test.iterations} passed: ${verdict.message}`;
      }
    } else if (state.step + 1 < steps) {
      Object.assign(next, { step: state.step + 1, weight: spec.steps[state.step + 1], stepStartedAt: last.at });
      next.message = `step ${next.step + 1}/${steps}: ${next.weight}% to ${spec.canary.service} (step ${state.step + 1} passed: ${verdict.message})`;
    } else {
      Object.assign(next, { phase: 'Promoted', weight: 100, stepStartedAt: last.at });
      next.message = `promoted: all traffic to ${spec.canary.service} (last step passed: ${verdict.message})`;
    }
    this.commit(key, spec, state, next, verdict.message);
  }

  /** Stores the new state and, when what is served moved (weight, test traffic), serves it (a change of kind canary). */
  private commit(key: string, spec: CanarySpec, before: CanaryState, next: CanaryState, reason: string): void {
    this.states.set(key, next);
    const mirrorChanged = comparing(spec, before.phase) !== comparing(spec, next.phase);
    if (served(spec, next) !== served(spec, before)) {
      const where = spec.test
        ? { mode: spec.test.mode, iteration: next.step, iterations: spec.test.iterations, test: open(next.phase) }
        : spec.strategy === 'ParallelRun'
          ? { mode: 'ParallelRun', comparing: comparing(spec, next.phase) }
          : { step: next.step + 1, steps: spec.steps.length };
      try {
        this.deps.publish({ canary: key, phase: next.phase, ...where, weight: next.weight, reason });
      } catch (err) {
        this.states.set(key, before);
        this.deps.log(`canary ${key}: weight ${next.weight}% cannot be served, staying at ${before.weight}%: ${(err as Error).message}`);
        return;
      }
    }
    if (mirrorChanged) this.syncComparator();
    const newError = next.lastAnalysis?.providerError !== undefined && next.lastAnalysis.providerError !== before.lastAnalysis?.providerError;
    if (next.phase !== before.phase || next.weight !== before.weight || next.step !== before.step || next.lastAnalysis?.result !== 'waiting' || newError) {
      this.deps.log(`canary ${key}: ${next.message}`);
    }
    this.persist(key, next);
  }

  /** pause, resume, promote or abort by hand. */
  act(namespace: string, name: string, action: CanaryAction): CanaryView {
    const key = `${namespace}/${name}`;
    const spec = this.specs.get(key);
    const state = this.states.get(key);
    if (!spec || !state) throw new CanaryActionError(`no Canary ${key} (see GET /api/v1/canaries)`, 404);
    const now = this.now();
    const at = new Date(now).toISOString();
    const next: CanaryState = { ...state, updatedAt: at };
    const refuse = () => {
      throw new CanaryActionError(`Canary ${key} is ${state.phase}: ${action} does not apply (change its spec to start it over)`, 409);
    };
    switch (action) {
      case 'pause':
        if (state.phase !== 'Progressing') refuse();
        Object.assign(next, { phase: 'Paused', message: `paused by hand at ${position(spec, state)}` });
        break;
      case 'resume':
        if (state.phase !== 'Paused') refuse();
        Object.assign(next, { phase: 'Progressing', windowStart: now, message: `resumed by hand at ${position(spec, state)}` });
        break;
      case 'promote':
        if (!open(state.phase)) refuse();
        Object.assign(next, { phase: 'Promoted', weight: 100, stepStartedAt: at, message: `promoted by hand: all traffic to ${spec.canary.service}` });
        break;
      case 'abort':
        if (!open(state.phase)) refuse();
        Object.assign(next, { phase: 'RolledBack', weight: 0, stepStartedAt: at, message: `aborted by hand: all traffic to ${spec.stable.service}` });
        break;
    }
    this.commit(key, spec, state, next, `${action} by hand`);
    return this.view(key)!;
  }

  private persist(key: string, state: CanaryState | undefined): void {
    this.deps.store.putState(STATE_KIND, key, state).catch((err: Error) => this.deps.log(`canary ${key}: state not stored: ${err.message}`));
  }

  list(): CanaryView[] {
    return [...this.specs.keys()].map((k) => this.view(k)).filter((v): v is CanaryView => v !== undefined);
  }

  view(key: string): CanaryView | undefined {
    const spec = this.specs.get(key);
    const state = this.states.get(key);
    if (!spec || !state) return undefined;
    return {
      name: spec.name,
      namespace: spec.namespace,
      target: spec.target.service,
      stable: spec.stable.service,
      canary: spec.canary.service,
      mode: modeOf(spec),
      ...(spec.test
        ? {
            iteration: state.step,
            iterations: spec.test.iterations,
            testTraffic: testTraffic(spec),
            testing: open(state.phase),
            ...(spec.test.match ? { match: spec.test.match.map((m) => ({ headers: m.headers })) } : {}),
            ...(spec.test.mirror ? { mirror: true } : {}),
          }
        : {}),
      phase: state.phase,
      step: spec.test ? state.step : state.step + 1,
      steps: spec.steps,
      weight: state.weight,
      failures: state.failures,
      failureLimit: spec.analysis.failureLimit,
      intervalSeconds: spec.intervalMs / 1000,
      stepStartedAt: state.stepStartedAt,
      nextAnalysisAt: state.phase === 'Progressing' ? new Date(state.windowStart + spec.intervalMs).toISOString() : undefined,
      message: state.message,
      lastAnalysis: state.lastAnalysis,
      source: spec.source ? `${spec.source.file}:${spec.source.line}` : undefined,
      strategy: spec.strategy === 'ParallelRun' ? 'ParallelRun' : spec.test?.mode === 'BlueGreen' ? 'BlueGreen' : 'Canary',
      ...(spec.strategy === 'ParallelRun' ? { parallelRun: this.deps.parallelRuns?.status(key) ?? null } : { provider: providerOf(spec) }),
    };
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}

export interface CanaryView {
  name: string;
  namespace: string;
  target: string;
  stable: string;
  canary: string;
  mode: CanaryMode;
  /** A/B and BlueGreen: passed intervals so far, of `iterations`. */
  iteration?: number;
  iterations?: number;
  /** A/B and BlueGreen: what the canary gets while judged, in words. */
  testTraffic?: string;
  /** A/B and BlueGreen: whether the test traffic is being served (Progressing or Paused). */
  testing?: boolean;
  match?: { headers: { type: 'Exact' | 'RegularExpression'; name: string; value: string }[] }[];
  mirror?: boolean;
  phase: CanaryPhase;
  /** 1-based step; in A/B and BlueGreen mode the same as `iteration`. */
  step: number;
  steps: number[];
  weight: number;
  failures: number;
  failureLimit: number;
  intervalSeconds: number;
  stepStartedAt: string;
  nextAnalysisAt?: string;
  message: string;
  lastAnalysis?: LastAnalysis;
  source?: string;
  /** The spec's strategy (A/B is strategy Canary with a match: see `mode`). */
  strategy: 'Canary' | 'BlueGreen' | 'ParallelRun';
  /** ParallelRun: what the comparator found so far (null: no comparator, or not comparing). */
  parallelRun?: ParallelRunStatus | null;
  /** Canary and BlueGreen: where the analysis gets its numbers. */
  provider?: CanaryProviderView;
}

export type CanaryProviderView = { kind: 'sidecars' } | { kind: 'prometheus'; address: string; timeoutMs: number; successRateQuery?: string; latencyP99Query?: string };

const providerOf = (spec: CanarySpec): CanaryProviderView => {
  const p = spec.analysis.provider?.prometheus;
  return p ? { kind: 'prometheus', ...p } : { kind: 'sidecars' };
};
