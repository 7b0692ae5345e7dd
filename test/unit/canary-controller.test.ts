// The Canary controller on a fake clock, with a real TrafficStore and a real state
// store (memory or file): steps, waiting, failures, rollback, promotion, manual moves,
// and a restart that resumes from the store.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { CanaryController, type CanaryControllerDeps } from '../../control-plane/delivery/canary.ts';
import type { CanarySpec, MeshModel } from '../../control-plane/model/types.ts';
import { FileStore, MemoryStore } from '../../control-plane/registry/store.ts';
import { TrafficStore } from '../../control-plane/telemetry/traffic.ts';

const ref = (service: string) => ({ service, namespace: 'default' });
const spec = (over: Partial<CanarySpec> = {}): CanarySpec => ({
  name: 'reviews',
  namespace: 'default',
  target: ref('reviews'),
  stable: ref('reviews-v1'),
  canary: ref('reviews-v2'),
  steps: [5, 25, 50, 100],
  intervalMs: 10_000,
  analysis: { successRateMin: 99, minRequests: 20, failureLimit: 2 },
  ...over,
});
const model = (canaries: CanarySpec[]): MeshModel => ({
  services: ['reviews', 'reviews-v1', 'reviews-v2'].map((name) => ({ name, namespace: 'default', ports: [{ port: 80, targetPort: 80, appProtocol: 'http' as const }] })),
  routes: [],
  policies: [],
  endpoints: [],
  canaries,
});

function harness(store: CanaryControllerDeps['store'] = new MemoryStore(), start = 1_000_000) {
  let now = start;
  const traffic = new TrafficStore();
  const published: Record<string, unknown>[] = [];
  const logs: string[] = [];
  let refuse = false;
  const controller = new CanaryController({
    traffic,
    publish: (note) => {
      if (refuse) throw new Error('cannot be served');
      published.push(note);
    },
    store,
    log: (l) => logs.push(l),
    now: () => now,
    tickMs: 3_600_000,
  });
  return {
    controller,
    published,
    logs,
    refuseNext: () => {
      refuse = true;
    },
    /** Canary answers over the next interval, then the clock moves past it and the controller ticks. */
    interval(ok: number, errors = 0, ms = 10_000) {
      traffic.record(now + 1, ref('frontend'), ref('reviews-v2'), { classes: [0, 0, ok, 0, 0, errors] });
      traffic.record(now + 1, ref('frontend'), ref('reviews-v1'), { classes: [0, 0, 100] });
      now += ms;
      controller.tick();
      return controller.list()[0];
    },
    weightServed: (config = model([spec()])) => controller.overlay(config).routes[0]?.rules[0].backends.map((b) => `${b.service}=${b.weight}`),
  };
}

test('passing analyses walk the steps and promote; each move is published with its note', (t) => {
  const h = harness();
  h.controller.sync(model([spec()]));
  t.deepEqual(h.weightServed(), ['reviews-v1=95', 'reviews-v2=5']);
  t.like(h.interval(50), { phase: 'Progressing', step: 2, weight: 25 });
  t.like(h.interval(50), { step: 3, weight: 50 });
  t.like(h.interval(50), { step: 4, weight: 100 });
  const done = h.interval(50);
  t.like(done, { phase: 'Promoted', weight: 100 });
  t.regex(done.message, /promoted: all traffic to reviews-v2/);
  t.deepEqual(h.weightServed(), ['reviews-v2=100']);
  t.deepEqual(h.published.map((n) => n.weight), [25, 50, 100]);
  t.like(h.published[0], { canary: 'default/reviews', phase: 'Progressing', step: 2, steps: 4, weight: 25 });
  t.like(done.lastAnalysis, { result: 'passed', requests: 50, successRate: 100, step: 4, weight: 100, stable: { requests: 100, successRate: 100 } });
});

test('an analysis is due only after a whole interval', (t) => {
  const h = harness();
  h.controller.sync(model([spec()]));
  t.like(h.interval(50, 0, 9_999), { step: 1, lastAnalysis: undefined });
  t.like(h.interval(0, 0, 1), { step: 2 });
});

test('too little traffic waits without failing, and says how much came', (t) => {
  const h = harness();
  h.controller.sync(model([spec()]));
  const c = h.interval(3);
  t.like(c, { phase: 'Progressing', step: 1, weight: 5, failures: 0 });
  t.is(c.message, 'step 1/4 at 5%: waiting for traffic: 3/20 requests');
  t.deepEqual(h.published, []);
});

test('failures count up to the limit, then the canary is rolled back to 0%', (t) => {
  const h = harness();
  h.controller.sync(model([spec()]));
  const first = h.interval(80, 20);
  t.like(first, { phase: 'Progressing', step: 1, failures: 1 });
  t.regex(first.message, /analysis failed \(1\/2\): success rate 80% < 99%/);
  const second = h.interval(80, 20);
  t.like(second, { phase: 'RolledBack', weight: 0, failures: 2 });
  t.regex(second.message, /rolled back after 2\/2 failed analyses: success rate 80% < 99%/);
  t.deepEqual(h.weightServed(), ['reviews-v1=100']);
  t.like(h.published[0], { phase: 'RolledBack', weight: 0 });
  t.like(h.interval(100), { phase: 'RolledBack' }, 'a rolled-back canary stays so');
});

test('pause holds the step, resume restarts the interval, promote and abort finish; a finished canary refuses more', (t) => {
  const h = harness();
  h.controller.sync(model([spec()]));
  t.like(h.controller.act('default', 'reviews', 'pause'), { phase: 'Paused' });
  t.like(h.interval(50), { phase: 'Paused', step: 1 }, 'no analysis while paused');
  t.throws(() => h.controller.act('default', 'reviews', 'pause'), { message: /is Paused: pause does not apply/ });
  t.like(h.controller.act('default', 'reviews', 'resume'), { phase: 'Progressing' });
  t.like(h.controller.act('default', 'reviews', 'abort'), { phase: 'RolledBack', weight: 0 });
  t.throws(() => h.controller.act('default', 'reviews', 'promote'), { message: /is RolledBack: promote does not apply/ });
  t.throws(() => h.controller.act('default', 'nope', 'promote'), { message: /no Canary default\/nope/ });
  t.like(h.published[0], { weight: 0, reason: 'abort by hand' });
});

test('a weight that cannot be served leaves the canary where it was', (t) => {
  const h = harness();
  h.controller.sync(model([spec()]));
  h.refuseNext();
  t.like(h.interval(50), { step: 1, weight: 5 });
  t.regex(h.logs.join('\n'), /weight 25% cannot be served, staying at 5%/);
});

test('a changed spec starts over; a removed Canary is forgotten and its split no longer served', (t) => {
  const h = harness();
  h.controller.sync(model([spec()]));
  h.interval(50);
  t.like(h.controller.list()[0], { step: 2 });
  h.controller.sync(model([spec({ steps: [10, 100] })]));
  t.like(h.controller.list()[0], { step: 1, weight: 10 });
  h.controller.sync(model([]));
  t.deepEqual(h.controller.list(), []);
  t.deepEqual(h.controller.overlay(model([])).routes, []);
});

test('state survives a restart through the file store; the step resumes with a fresh interval', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-canary-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'registry.json');
  const first = new FileStore(file);
  await first.start({ put() {}, delete() {} });
  const h = harness(first);
  h.controller.sync(model([spec()]));
  h.interval(50);
  h.interval(50);
  await first.close();
  h.controller.close();

  const second = new FileStore(file);
  await second.start({ put() {}, delete() {} });
  const later = harness(second, 5_000_000);
  await later.controller.load();
  // The overlay serves the stored weight even before the config is synced.
  t.deepEqual(later.weightServed(), ['reviews-v1=50', 'reviews-v2=50']);
  later.controller.sync(model([spec()]));
  const resumed = later.controller.list()[0];
  t.like(resumed, { phase: 'Progressing', step: 3, weight: 50 });
  t.is(resumed.nextAnalysisAt, new Date(5_000_000 + 10_000).toISOString());
  t.like(later.interval(50), { step: 4, weight: 100 });
  later.controller.close();
});
