// The Prometheus analysis provider: a Canary with `analysis.provider.prometheus` is
// judged from the user's Prometheus (HTTP API `/api/v1/query`) instead of the metrics
// the sidecars stream to the control plane. That Prometheus scrapes the sidecars'
// read-only stats listener (`:15090/stats/prometheus`, Envoy's admin output), where Envoy (1.40, default tag extraction) names an
// outbound cluster's stats this way (checked against a real Envoy):
//
//   cluster.outbound|9080||reviews-v2.default.upstream_rq_5xx
//   -> envoy_cluster_default_upstream_rq_xx{envoy_cluster_name="outbound|9080||reviews-v2",envoy_response_code_class="5"}
//
// The cluster-name tag stops at the first dot, so the namespace lands in the metric
// name ('-' written '_'), and the label holds `outbound|PORT||SERVICE`. Requests are
// the responses of every status class (as from the sidecars: the sidecar bootstrap
// exports upstream_rq_Nxx, total and time, not upstream_rq_completed). A query that
// fails throws a PrometheusQueryError; the controller then waits, it never judges.
import { request } from 'undici';
import type { PrometheusProvider } from '../model/types.ts';
import type { ServiceRef } from '../telemetry/traffic.ts';
import type { Measured } from './analysis.ts';

export class PrometheusQueryError extends Error {
  readonly code = 'TESSERA_ERR_PROMETHEUS';
}

/** The metric name prefix of a namespace's outbound clusters. */
export function metricPrefix(namespace: string): string {
  return `envoy_cluster_${namespace.replace(/[^a-zA-Z0-9_]/g, '_')}_`;
}

/** The label matcher for every outbound cluster (any port) of one backend Service.
 *  Service names are DNS labels, so nothing in them needs escaping in the regex. */
export function clusterMatcher(backend: ServiceRef): string {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(backend.service)) throw new PrometheusQueryError(`${JSON.stringify(backend.service)} is not a Service name`);
  return `envoy_cluster_name=~"outbound\\\\|[0-9]+\\\\|\\\\|${backend.service}"`;
}

/** How much each series of a counter grew over the window: its value now less its value
 *  at the window's start. A series born inside the window (Envoy makes the 5xx counter
 *  at the first 5xx) counts from zero; increase() would lose its first sample, and a
 *  canary's first errors with it. A counter that went down (the sidecar restarted)
 *  counts as 0. */
function growth(selector: string, offset: string): string {
  return `(clamp_min(${selector} - ${selector} offset ${offset}, 0) or ${selector})`;
}

/** PromQL for one backend over a window ending at the evaluation time. */
export function buildQueries(backend: ServiceRef, windowMs: number): { requests: string; errors5xx: string; p99: string } {
  const prefix = metricPrefix(backend.namespace);
  const window = `${Math.max(1, Math.round(windowMs))}ms`;
  const cluster = clusterMatcher(backend);
  return {
    requests: `sum${growth(`${prefix}upstream_rq_xx{${cluster}}`, window)}`,
    errors5xx: `sum${growth(`${prefix}upstream_rq_xx{${cluster},envoy_response_code_class="5"}`, window)}`,
    p99: `histogram_quantile(0.99, sum by (le) ${growth(`${prefix}upstream_rq_time_bucket{${cluster}}`, window)})`,
  };
}

/** A user's query template for one backend and window: `{{backend}}`, `{{namespace}}`,
 *  `{{interval}}` (the config refuses any other placeholder). */
export function renderTemplate(template: string, backend: ServiceRef, windowMs: number): string {
  const values: Record<string, string> = { backend: backend.service, namespace: backend.namespace, interval: `${Math.max(1, Math.round(windowMs))}ms` };
  return template.replace(/\{\{\s*(backend|namespace|interval)\s*\}\}/g, (_, name: string) => values[name]);
}

/** The one number of an instant query's answer: undefined when the vector is empty
 *  (no such series: no traffic), NaN as Prometheus says it (e.g. a quantile of no
 *  samples). Anything but a success with at most one sample is an error. */
export function parseQueryResult(body: unknown): number | undefined {
  const b = body as { status?: unknown; error?: unknown; errorType?: unknown; data?: { resultType?: unknown; result?: unknown } };
  if (b === null || typeof b !== 'object') throw new PrometheusQueryError('the answer is not a JSON object');
  if (b.status !== 'success') {
    throw new PrometheusQueryError(`the query failed: ${typeof b.errorType === 'string' ? `${b.errorType}: ` : ''}${typeof b.error === 'string' ? b.error : JSON.stringify(b).slice(0, 200)}`);
  }
  const { resultType, result } = b.data ?? {};
  const sampleOf = (pair: unknown): number => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[1] !== 'string') throw new PrometheusQueryError(`a sample is not [time, "value"]: ${String(JSON.stringify(pair)).slice(0, 100)}`);
    const v = Number(pair[1]);
    if (Number.isNaN(v) && pair[1] !== 'NaN') throw new PrometheusQueryError(`a sample value is not a number: ${JSON.stringify(pair[1])}`);
    return v;
  };
  if (resultType === 'scalar') return sampleOf(result);
  if (resultType !== 'vector' || !Array.isArray(result)) throw new PrometheusQueryError(`expected a vector, got ${JSON.stringify(resultType)}`);
  if (result.length === 0) return undefined;
  if (result.length > 1) throw new PrometheusQueryError(`expected one series, got ${result.length} (a user query must aggregate, e.g. sum(...))`);
  return sampleOf((result[0] as { value?: unknown }).value);
}

/** One instant query at `timeMs`, bounded by the provider's timeout. */
export async function instantQuery(provider: PrometheusProvider, query: string, timeMs: number): Promise<number | undefined> {
  const url = new URL('api/v1/query', `${provider.address}/`);
  url.searchParams.set('query', query);
  url.searchParams.set('time', (timeMs / 1000).toFixed(3));
  url.searchParams.set('timeout', `${provider.timeoutMs}ms`);
  let status: number;
  let text: string;
  try {
    const res = await request(url, { signal: AbortSignal.timeout(provider.timeoutMs), headers: { accept: 'application/json' } });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    const e = err as Error;
    const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${provider.timeoutMs} ms` : e.message || e.name;
    throw new PrometheusQueryError(`unreachable: ${why}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new PrometheusQueryError(`answered ${status} with no JSON: ${JSON.stringify(text.slice(0, 120))}`);
  }
  return parseQueryResult(body);
}

/** The numbers of one backend over [since, until) from Prometheus. */
export async function measureFromPrometheus(provider: PrometheusProvider, backend: ServiceRef, since: number, until: number): Promise<Measured> {
  const windowMs = until - since;
  const q = buildQueries(backend, windowMs);
  const ask = (query: string, what: string) =>
    instantQuery(provider, query, until).catch((err: Error) => {
      throw new PrometheusQueryError(`prometheus at ${provider.address}: ${what}${err.message}`);
    });
  const successQuery = provider.successRateQuery && renderTemplate(provider.successRateQuery, backend, windowMs);
  const latencyQuery = provider.latencyP99Query ? renderTemplate(provider.latencyP99Query, backend, windowMs) : q.p99;
  const [requests, errors5xx, p99, success] = await Promise.all([
    ask(q.requests, ''),
    ask(q.errors5xx, ''),
    ask(latencyQuery, provider.latencyP99Query ? 'latencyP99Query: ' : ''),
    successQuery ? ask(successQuery, 'successRateQuery: ') : undefined,
  ]);
  // Counter growth is whole; rounded anyway to one decimal, and never below 0.
  const count = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? 0 : Math.max(0, Math.round(v * 10) / 10));
  const measured: Measured = {
    requests: count(requests),
    errors5xx: count(errors5xx),
    p99Ms: p99 === undefined || !Number.isFinite(p99) ? null : Math.round(p99 * 10) / 10,
  };
  if (successQuery) {
    const rate = success === undefined || Number.isNaN(success) ? null : success;
    if (rate !== null && !(rate >= 0 && rate <= 100)) {
      throw new PrometheusQueryError(`prometheus at ${provider.address}: successRateQuery gave ${rate} for ${backend.service}, not a percent (0-100)`);
    }
    measured.successRate = rate === null ? null : Math.round(rate * 100) / 100;
  }
  return measured;
}
