// `analysis.provider` of a Canary: where the analysis gets its numbers. Absent, the
// metrics the sidecars stream to the control plane; `prometheus`, the user's own
// Prometheus over its HTTP API. Every field is checked here, at its line.
import type { PrometheusProvider } from '../model/types.ts';
import { parseDuration } from './duration.ts';

// biome-ignore lint/suspicious/noExplicitAny: the spec is checked against its JSON schema (ajv) before conversion
type Spec = Record<string, any>;
type Fail = (at: (string | number)[], message: string) => void;

/** Each Prometheus query is bounded by this unless `timeout` says otherwise. */
export const PROMETHEUS_DEFAULT_TIMEOUT_MS = 5000;
const MAX_TIMEOUT_MS = 60_000;
const MIN_TIMEOUT_MS = 100;

/** Why an address cannot be a Prometheus base URL, or undefined when it can. */
export function prometheusAddressProblem(address: string): string | undefined {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return 'is not a URL (e.g. http://prometheus:9090)';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `has scheme ${url.protocol.slice(0, -1)}: only http and https are supported (e.g. http://prometheus:9090)`;
  if (url.username || url.password) return 'carries credentials, which are not supported (put the Prometheus behind no auth on a network the control plane can reach)';
  if (url.search || url.hash) return 'has a query or fragment: give the base URL only (the path before /api/v1)';
  return undefined;
}

/** The provider of a Canary's analysis, or undefined for the sidecars' own metrics. */
export function analysisProvider(analysis: Spec, fail: Fail): { prometheus: PrometheusProvider } | undefined {
  const p = analysis.provider?.prometheus;
  if (!p) return undefined;
  const at = ['spec', 'analysis', 'provider', 'prometheus'];
  const problem = prometheusAddressProblem(p.address);
  if (problem) fail([...at, 'address'], `analysis.provider.prometheus.address ${JSON.stringify(p.address)} ${problem}`);
  const timeoutMs = p.timeout === undefined ? PROMETHEUS_DEFAULT_TIMEOUT_MS : parseDuration(p.timeout);
  if (timeoutMs < MIN_TIMEOUT_MS || timeoutMs > MAX_TIMEOUT_MS) fail([...at, 'timeout'], `analysis.provider.prometheus.timeout must be from 100ms to 60s, not ${p.timeout}`);
  const queries: Pick<PrometheusProvider, 'successRateQuery' | 'latencyP99Query'> = {};
  for (const field of ['successRateQuery', 'latencyP99Query'] as const) {
    const template = p[field] as string | undefined;
    if (template === undefined) continue;
    const placeholders = templatePlaceholders(template);
    const unknown = placeholders.filter((name) => !(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(name));
    if (unknown.length > 0) {
      fail([...at, field], `analysis.provider.prometheus.${field} has ${unknown.map((n) => `{{${n}}}`).join(', ')}: only ${TEMPLATE_PLACEHOLDERS.map((n) => `{{${n}}}`).join(', ')} are filled in`);
    }
    if (!placeholders.includes('backend')) {
      fail([...at, field], `analysis.provider.prometheus.${field} has no {{backend}}: the same query would judge the canary and stable alike`);
    }
    queries[field] = template;
  }
  return { prometheus: { address: String(p.address).replace(/\/+$/, ''), timeoutMs, ...queries } };
}

/** What a query template may use: the backend Service, its namespace, and the window. */
export const TEMPLATE_PLACEHOLDERS = ['backend', 'namespace', 'interval'] as const;

/** The names inside `{{ … }}` of a template. */
export function templatePlaceholders(template: string): string[] {
  return [...template.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)].map((m) => m[1]);
}
