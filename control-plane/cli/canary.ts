// `tessera canary list|status|pause|resume|promote|abort` and `tessera get canaries`:
// the Canary controller through the admin API.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import type { CanaryView } from '../delivery/canary.ts';
import { adminGet, table, type AdminTarget } from './admin-client.ts';

const ACTIONS = ['pause', 'resume', 'promote', 'abort'] as const;
const USAGE = 'tessera canary list|status NAME|pause NAME|resume NAME|promote NAME|abort NAME [--namespace NS] [--admin URL] [--admin-token-file F] [-o json]';

export async function canaryCommand(args: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      admin: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      'admin-token-file': { type: 'string' },
      output: { type: 'string', short: 'o' },
    },
  });
  const tokenFile = values['admin-token-file'];
  const target: AdminTarget = {
    adminUrl: values.admin ?? process.env.TESSERA_ADMIN ?? 'http://127.0.0.1:18080',
    token: tokenFile ? fs.readFileSync(tokenFile, 'utf8').trim() : process.env.TESSERA_TOKEN,
  };
  const json = values.output === 'json';
  const [verb, name] = positionals;
  const namespace = values.namespace ?? 'default';
  if (verb === 'list' || verb === undefined) return printCanaries(target, json, out);
  if (!name) throw new Error(`canary ${verb} needs a Canary name\nusage: ${USAGE}`);
  const where = `/api/v1/canaries/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
  if (verb === 'status') {
    const view = await adminGet<CanaryView>(target, where);
    out.write(json ? JSON.stringify(view, null, 2) + '\n' : describe(view));
    return 0;
  }
  if (!(ACTIONS as readonly string[]).includes(verb)) throw new Error(`unknown canary command ${JSON.stringify(verb)}\nusage: ${USAGE}`);
  const res = await request(target.adminUrl.replace(/\/$/, '') + `${where}/${verb}`, {
    method: 'POST',
    headers: target.token ? { authorization: `Bearer ${target.token}` } : {},
  }).catch((err: Error) => {
    throw new Error(`cannot reach the admin API at ${target.adminUrl}: ${err.message}`);
  });
  const body = (await res.body.json().catch(() => ({}))) as CanaryView & { error?: string };
  if (res.statusCode !== 200) throw new Error(`${verb} ${namespace}/${name}: ${res.statusCode} ${body.error ?? ''}`);
  out.write(json ? JSON.stringify(body, null, 2) + '\n' : `canary ${namespace}/${name}: ${body.phase}, ${share(body)} to ${body.canary}: ${body.message}\n`);
  return 0;
}

/** The canary's share: "25%", or in A/B and BlueGreen mode while judged "0% + test traffic". */
const share = (c: CanaryView) => `${c.weight}%${c.testing ? ` + ${c.mirror ? 'mirror' : 'match'}` : ''}`;
/** "2/4" (step of steps), the passed iterations of A/B and BlueGreen, or "parallel". */
const progress = (c: CanaryView) => {
  if (c.strategy === 'ParallelRun') return 'parallel';
  return c.iterations !== undefined ? `${c.iteration}/${c.iterations}` : `${c.step}/${c.steps.length}`;
};

export async function printCanaries(target: AdminTarget, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const { canaries } = await adminGet<{ canaries: CanaryView[] }>(target, '/api/v1/canaries');
  if (json) {
    out.write(JSON.stringify(canaries, null, 2) + '\n');
    return 0;
  }
  const analysis = (c: CanaryView) => {
    const a = c.lastAnalysis;
    if (!a) return '-';
    if (c.strategy === 'ParallelRun') return `${a.result} ${a.requests} compared, ${a.mismatchPercent ?? '-'}% differ`;
    return `${a.result} ${a.requests} req, ${a.successRate ?? '-'}% ok, p99 ${a.p99Ms ?? '-'} ms`;
  };
  const rows = canaries.map((c) => [
    `${c.namespace}/${c.name}`,
    c.target,
    c.mode ?? 'Canary',
    c.phase,
    progress(c),
    share(c),
    `${c.failures}/${c.failureLimit}`,
    analysis(c),
  ]);
  out.write(table(['NAME', 'TARGET', 'MODE', 'PHASE', 'STEP', 'WEIGHT', 'FAILURES', 'LAST ANALYSIS'], rows));
  return 0;
}

function describe(c: CanaryView): string {
  if (c.strategy === 'ParallelRun') return describeParallelRun(c);
  const a = c.lastAnalysis;
  const lines = [
    `canary ${c.namespace}/${c.name} (${c.source ?? 'config'}): ${c.target} from ${c.stable} to ${c.canary}`,
    c.iterations !== undefined
      ? `mode ${c.mode}, phase ${c.phase}, iteration ${c.iteration}/${c.iterations}, ${share(c)} to ${c.canary}, failures ${c.failures}/${c.failureLimit}, interval ${c.intervalSeconds}s`
      : `mode ${c.mode ?? 'Canary'}, phase ${c.phase}, step ${c.step}/${c.steps.length} (steps ${c.steps.join(', ')}), ${c.weight}% to ${c.canary}, failures ${c.failures}/${c.failureLimit}, interval ${c.intervalSeconds}s`,
    ...(c.testTraffic ? [`test traffic: ${c.testTraffic} to ${c.canary}${c.testing ? '' : ' (no longer served)'}`] : []),
    `metrics: ${providerText(c)}`,
    c.message,
  ];
  if (a) {
    lines.push(
      `last analysis ${a.at} over ${a.windowSeconds}s${a.provider === 'prometheus' ? ' from prometheus' : ''} at ${c.iterations !== undefined ? `iteration ${a.step}/${c.iterations}` : `step ${a.step} (${a.weight}%)`}: ${a.result}`,
      `  ${c.canary}: ${a.requests} ${a.test === 'mirror' ? 'mirrored ' : a.test === 'match' ? 'matching ' : ''}requests, ${a.errors5xx} 5xx, success rate ${a.successRate ?? '-'}%, p99 ${a.p99Ms ?? '-'} ms`,
      `  ${c.stable}: ${a.stable.requests} requests, success rate ${a.stable.successRate ?? '-'}%, p99 ${a.stable.p99Ms ?? '-'} ms`,
    );
  }
  if (c.nextAnalysisAt) lines.push(`next analysis ${c.nextAnalysisAt}`);
  return lines.join('\n') + '\n';
}

const customQueries = (p: { successRateQuery?: string; latencyP99Query?: string }) => {
  const own = [p.successRateQuery && 'successRateQuery', p.latencyP99Query && 'latencyP99Query'].filter(Boolean);
  return own.length ? `; own ${own.join(' and ')}` : '';
};
/** Where the analysis gets its numbers, in words. */
const providerText = (c: CanaryView) =>
  c.provider?.kind === 'prometheus'
    ? `prometheus at ${c.provider.address} (each query bounded by ${c.provider.timeoutMs} ms${customQueries(c.provider)})`
    : 'from the sidecars (streamed to the control plane)';

function describeParallelRun(c: CanaryView): string {
  const lines = [
    `canary ${c.namespace}/${c.name} (${c.source ?? 'config'}): parallel run, ${c.target} answered by ${c.stable}, ${c.canary} compared on mirrored requests`,
    `phase ${c.phase}, ${c.weight}% to ${c.canary}, failures ${c.failures}/${c.failureLimit}, interval ${c.intervalSeconds}s`,
    c.message,
  ];
  const p = c.parallelRun;
  if (!p) lines.push('no comparison (no comparator, or the control plane restarted since the run ended)');
  else {
    lines.push(`${p.comparing ? 'comparing' : 'finished'} since ${p.startedAt}: ${p.compared} compared, ${p.mismatched} differ (${p.mismatchPercent ?? '-'}%)`);
    const skipped = Object.entries(p.skipped).map(([m, n]) => `${m} ${n}`);
    const dropped = Object.entries(p.dropped).map(([r, n]) => `${r} ${n}`);
    if (skipped.length) lines.push(`skipped (method not compared): ${skipped.join(', ')}`);
    if (dropped.length) lines.push(`dropped: ${dropped.join(', ')}`);
    for (const r of p.routes) {
      lines.push(`  ${r.route}: ${r.compared} compared, ${r.mismatched} differ (${r.mismatchPercent}%)${r.noisyFields.length ? `; noise ignored: ${r.noisyFields.join(', ')}` : ''}`);
      for (const f of r.fields) {
        lines.push(`    ${f.field}: ${f.differences} (${f.percent}%)`);
        for (const e of f.examples) lines.push(`      ${e.request}: stable ${e.primary}, candidate ${e.candidate}`);
      }
    }
  }
  if (c.nextAnalysisAt) lines.push(`next analysis ${c.nextAnalysisAt}`);
  return lines.join('\n') + '\n';
}
