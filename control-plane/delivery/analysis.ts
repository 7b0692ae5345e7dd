// Judging a canary backend over one interval, from what the sidecars reported (or what
// a Prometheus provider measured). Pure: totals in, verdict with its numbers out. Too
// little traffic waits, it never fails (a canary rolled back because a metric had no
// data is flagger#1035).
import type { CanarySpec } from '../model/types.ts';
import { percentileMs, type Totals } from '../telemetry/traffic.ts';

/** The numbers an analysis judges, whoever measured them (the sidecars, a Prometheus). */
export interface Measured {
  requests: number;
  errors5xx: number;
  p99Ms: number | null;
  /** A success rate measured by a query of its own (successRateQuery), in percent; null
   *  when that query gave no sample. Absent: computed from requests and 5xx. */
  successRate?: number | null;
}

export interface Analysis {
  result: 'passed' | 'failed' | 'waiting';
  requests: number;
  errors5xx: number;
  /** Percent of non-5xx responses; null without requests. */
  successRate: number | null;
  p99Ms: number | null;
  /** Why, in words, with the numbers: "success rate 80% < 99%". */
  message: string;
}

export function analyze(criteria: CanarySpec['analysis'], totals: Totals): Analysis {
  return judgeMeasured(criteria, { requests: totals.requests, errors5xx: totals.status['5xx'], p99Ms: percentileMs(totals, 0.99) });
}

/** The same judgement over numbers measured elsewhere (a Prometheus provider). */
export function judgeMeasured(criteria: CanarySpec['analysis'], measured: Measured): Analysis {
  const { requests, errors5xx, p99Ms } = measured;
  const counted = requests > 0 ? Math.round(((requests - errors5xx) / requests) * 10_000) / 100 : null;
  // A success rate of its own (a provider's successRateQuery) wins over the counts.
  const successRate = measured.successRate !== undefined ? measured.successRate : counted;
  const base = { requests, errors5xx, successRate, p99Ms };
  const judged = criteria.successRateMin !== undefined || criteria.latencyP99MaxMs !== undefined;
  // With something to judge, at least one request is needed, whatever minRequests says.
  const needed = judged ? Math.max(1, criteria.minRequests) : criteria.minRequests;
  if (requests < needed) return { ...base, result: 'waiting', message: `waiting for traffic: ${requests}/${needed} requests` };
  const failures: string[] = [];
  const passes: string[] = [];
  // Requests but no success rate from its own query: wait (never judge on nothing).
  if (criteria.successRateMin !== undefined && measured.successRate === null) {
    return { ...base, result: 'waiting', message: `waiting for success-rate data (${requests} requests, successRateQuery gave no sample)` };
  }
  if (criteria.successRateMin !== undefined && successRate !== null) {
    if (successRate < criteria.successRateMin) failures.push(`success rate ${successRate}% < ${criteria.successRateMin}%`);
    else passes.push(`success rate ${successRate}% >= ${criteria.successRateMin}%`);
  }
  if (criteria.latencyP99MaxMs !== undefined) {
    // Requests but no latency histogram yet (it comes with the next flush): wait.
    if (p99Ms === null) return { ...base, result: 'waiting', message: `waiting for latency data (${requests} requests, no upstream_rq_time yet)` };
    if (p99Ms > criteria.latencyP99MaxMs) failures.push(`p99 ${p99Ms} ms > ${criteria.latencyP99MaxMs} ms`);
    else passes.push(`p99 ${p99Ms} ms <= ${criteria.latencyP99MaxMs} ms`);
  }
  if (failures.length > 0) return { ...base, result: 'failed', message: `${failures.join('; ')} (${requests} requests)` };
  return { ...base, result: 'passed', message: `${passes.join('; ') || 'no criteria'} (${requests} requests)` };
}
