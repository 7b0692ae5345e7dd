// The Canary kind in config files: what loads, and every rejection with its file:line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadConfigDir } from '../../control-plane/config/load.ts';

const SERVICES = ['reviews', 'reviews-v1', 'reviews-v2']
  .map((n) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${n}}\nspec:\n  ports: [{name: http, port: 9080, appProtocol: http}]\n`)
  .join('---\n');

function canary(spec: Record<string, string>, name = 'reviews'): string {
  const fields = { targetRef: '{group: "", kind: Service, name: reviews}', stable: '{name: reviews-v1}', canary: '{name: reviews-v2}', strategy: 'Canary', steps: '[5, 25, 50, 100]', interval: '30s', analysis: '{successRate: {min: 99}, latencyP99: {max: 500ms}, minRequests: 20, failureLimit: 2}', ...spec };
  const body = Object.entries(fields).filter(([, v]) => v !== '').map(([k, v]) => `  ${k}: ${v}`).join('\n');
  return `apiVersion: tessera.dev/v1alpha1\nkind: Canary\nmetadata: {name: ${name}}\nspec:\n${body}\n`;
}

function load(t: ExecutionContext, files: Record<string, string>) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-canary-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return loadConfigDir(d);
}

test('the Canary of DESIGN.md loads into the model', (t) => {
  const result = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({}) });
  t.deepEqual(result.errors, []);
  t.deepEqual(result.model.canaries, [
    {
      name: 'reviews',
      namespace: 'default',
      target: { service: 'reviews', namespace: 'default' },
      stable: { service: 'reviews-v1', namespace: 'default' },
      canary: { service: 'reviews-v2', namespace: 'default' },
      steps: [5, 25, 50, 100],
      intervalMs: 30_000,
      analysis: { successRateMin: 99, latencyP99MaxMs: 500, minRequests: 20, failureLimit: 2 },
      source: { file: 'canary.yaml', line: 3 },
    },
  ]);
});

test('a config without a Canary has no canaries field (the model of other kinds is unchanged)', (t) => {
  t.false('canaries' in load(t, { 'services.yaml': SERVICES }).model);
});

const rejections: [string, Record<string, string>, RegExp, number][] = [
  ['steps must increase', { steps: '[5, 50, 25]' }, /steps must increase \(step 2 is 25, after 50\)/, 9],
  ['a step over 100', { steps: '[5, 150]' }, /steps\[1\] must be <= 100/, 9],
  ['stable and canary the same', { canary: '{name: reviews-v1}' }, /canary and stable are the same Service \(reviews-v1\)/, 7],
  ['target is a backend', { targetRef: '{kind: Service, name: reviews-v1}' }, /targetRef reviews-v1 must be the Service clients call/, 5],
  ['a canary Service that does not exist', { canary: '{name: reviews-v3}' }, /Canary default\/reviews: canary 'reviews-v3' names no Service in namespace default/, 7],
  ['an interval under 1s', { interval: '500ms' }, /interval must be from 1s to 24h, not 500ms/, 10],
  ['a misspelt analysis field', { analysis: '{successRate: {min: 99}, minRequest: 20}' }, /unknown field 'spec.analysis.minRequest'/, 11],
  ['a success rate over 100', { analysis: '{successRate: {min: 120}}' }, /spec.analysis.successRate.min must be <= 100/, 11],
  ['a strategy that does not exist', { strategy: 'Rainbow' }, /spec.strategy must be one of "Canary", "BlueGreen", "ParallelRun"/, 8],
  ['no steps', { steps: '' }, /missing required field 'steps'/, 5],
];

for (const [title, spec, message, line] of rejections) {
  test(`a Canary is refused at its line: ${title}`, (t) => {
    const { errors } = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary(spec) });
    const error = errors.find((e) => message.test(e.message));
    t.truthy(error, JSON.stringify(errors));
    t.is(error?.file, 'canary.yaml');
    t.is(error?.line, line, JSON.stringify(error));
  });
}

test('a second Canary for the same Service is refused, naming the first', (t) => {
  const { errors } = load(t, { 'services.yaml': SERVICES, 'canary.yaml': `${canary({})}---\n${canary({}, 'reviews-again')}` });
  t.is(errors.length, 1);
  t.like(errors[0], { file: 'canary.yaml', line: 15 });
  t.regex(errors[0].message, /Canary default\/reviews-again: Service reviews already has Canary reviews \(canary.yaml:3\); one Canary per Service/);
});

test('a Canary on a Service with only tcp ports is refused', (t) => {
  const tcp = SERVICES.replace('appProtocol: http}]\n', 'appProtocol: tcp}]\n');
  const { errors } = load(t, { 'services.yaml': tcp, 'canary.yaml': canary({}) });
  t.regex(errors.map((e) => `${e.file}:${e.line}: ${e.message}`).join('\n'), /canary.yaml:3: Canary default\/reviews: Service reviews has only tcp ports/);
});

// ---- strategy: ParallelRun ----

const PARALLEL = { strategy: 'ParallelRun', steps: '', analysis: '{maxMismatchPercent: 1, minRequests: 100}' };

test('a ParallelRun loads with its defaults: idempotent methods, content-type compared, every request mirrored', (t) => {
  const result = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary(PARALLEL) });
  t.deepEqual(result.errors, []);
  const [c] = result.model.canaries!;
  t.is(c.strategy, 'ParallelRun');
  t.deepEqual(c.steps, []);
  t.deepEqual(c.parallelRun, { methods: ['GET', 'HEAD', 'OPTIONS'], headers: ['content-type'], percent: 100 });
  t.deepEqual(c.analysis, { maxMismatchPercent: 1, minRequests: 100, failureLimit: 1 });
});

test('a ParallelRun takes its methods, headers (lower-cased) and mirror percent', (t) => {
  const result = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({ ...PARALLEL, parallelRun: '{methods: [GET, POST], headers: [Content-Type, X-Version], percent: 20}' }) });
  t.deepEqual(result.errors, []);
  t.deepEqual(result.model.canaries![0].parallelRun, { methods: ['GET', 'POST'], headers: ['content-type', 'x-version'], percent: 20 });
});

test('a report-only ParallelRun (no analysis) loads', (t) => {
  const result = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({ ...PARALLEL, analysis: '' }) });
  t.deepEqual(result.errors, []);
  t.is(result.model.canaries![0].analysis.maxMismatchPercent, undefined);
});

const parallelRejections: [string, Record<string, string>, RegExp, number][] = [
  ['steps', { ...PARALLEL, steps: '[5, 50]' }, /steps do not apply to strategy ParallelRun/, 9],
  ['a success rate', { ...PARALLEL, analysis: '{successRate: {min: 99}}' }, /analysis.successRate applies to strategy Canary; a ParallelRun is judged by analysis.maxMismatchPercent/, 10],
  ['a p99 bound', { ...PARALLEL, analysis: '{latencyP99: {max: 1s}}' }, /analysis.latencyP99 applies to strategy Canary/, 10],
  ['a mismatch over 100%', { ...PARALLEL, analysis: '{maxMismatchPercent: 101}' }, /spec.analysis.maxMismatchPercent must be <= 100/, 10],
  ['a method that does not exist', { ...PARALLEL, parallelRun: '{methods: [FETCH]}' }, /spec.parallelRun.methods\[0\] must be one of/, 11],
  ['a mirror percent of 0', { ...PARALLEL, parallelRun: '{percent: 0}' }, /spec.parallelRun.percent must be >= 1/, 11],
  ['a misspelt parallelRun field', { ...PARALLEL, parallelRun: '{method: [GET]}' }, /unknown field 'spec.parallelRun.method'/, 11],
];

for (const [title, spec, message, line] of parallelRejections) {
  test(`a ParallelRun is refused at its line: ${title}`, (t) => {
    const { errors } = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary(spec) });
    const error = errors.find((e) => message.test(e.message));
    t.truthy(error, JSON.stringify(errors));
    t.is(error?.file, 'canary.yaml');
    t.is(error?.line, line, JSON.stringify(error));
  });
}

test('ParallelRun fields in a strategy Canary are refused at their line', (t) => {
  const { errors } = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({ analysis: '{maxMismatchPercent: 1}', parallelRun: '{percent: 50}' }) });
  t.deepEqual(
    errors.map((e) => `${e.file}:${e.line}: ${e.message}`),
    [
      'canary.yaml:11: Canary default/reviews: analysis.maxMismatchPercent applies to strategy ParallelRun only',
      'canary.yaml:12: Canary default/reviews: parallelRun applies to strategy ParallelRun only',
    ],
  );
});

test('a ParallelRun whose backends are STRICT mTLS loads (the comparator has a mesh certificate)', (t) => {
  const strict = 'apiVersion: tessera.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  mtls: {mode: STRICT}\n';
  t.deepEqual(load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary(PARALLEL), 'mesh.yaml': strict }).errors, []);
});
