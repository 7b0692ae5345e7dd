// The comparison half of a parallel run (Twitter's Diffy): three answers to one
// request — primary (stable), secondary (another stable instance) and candidate —
// compared field by field. A field on which primary and secondary disagree is noise
// (a timestamp, a request id) and is ignored for that route; what is left is the
// candidate's own difference. Pure: responses in, counts and examples out; every
// table is bounded, and what does not fit is counted, never kept.

/** One upstream answer, as the comparator read it. */
export interface Answer {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface ComparatorLimits {
  /** Routes (method + path pattern) per parallel run; later ones are counted as `other`. */
  maxRoutes: number;
  /** Differing fields tracked per route. */
  maxFields: number;
  /** Distinct sets of differing fields kept per route (to apply noise afterwards). */
  maxSignatures: number;
  /** Examples (primary vs candidate) kept per field. */
  examplesPerField: number;
  /** Differing paths recorded per comparison, and how deep JSON is walked. */
  maxPathsPerComparison: number;
  maxDepth: number;
  /** Longest example value (characters of its JSON). */
  maxExampleChars: number;
}

export const DEFAULT_COMPARATOR_LIMITS: ComparatorLimits = {
  maxRoutes: 100,
  maxFields: 200,
  maxSignatures: 256,
  examplesPerField: 3,
  maxPathsPerComparison: 64,
  maxDepth: 32,
  maxExampleChars: 200,
};

export const OTHER_ROUTE = 'OTHER (route limit reached)';

/** Field paths: `status`, `headers.content-type`, `body` (a non-JSON body as a
 *  whole), `body.items[].price` (arrays compared element by element, `.length` when
 *  their lengths differ). */
export type Differences = Map<string, [unknown, unknown]>;

const MISSING = Symbol('missing');

/** Where two answers differ. `headers` are the response headers compared (lower case). */
export function diffAnswers(a: Answer, b: Answer, headers: string[], limits: Pick<ComparatorLimits, 'maxPathsPerComparison' | 'maxDepth'> = DEFAULT_COMPARATOR_LIMITS): Differences {
  const out: Differences = new Map();
  if (a.status !== b.status) out.set('status', [a.status, b.status]);
  for (const name of headers) {
    const x = headerValue(a.headers[name]);
    const y = headerValue(b.headers[name]);
    if (x !== y) out.set(`headers.${name}`, [x ?? MISSING, y ?? MISSING]);
  }
  if (a.body.equals(b.body)) return out;
  const x = parseJson(a);
  const y = parseJson(b);
  if (x === NOT_JSON || y === NOT_JSON) {
    out.set('body', [x === NOT_JSON ? a.body.toString('utf8') : x, y === NOT_JSON ? b.body.toString('utf8') : y]);
    return out;
  }
  diffJson(x, y, 'body', out, 0, limits);
  return out;
}

const headerValue = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);

const NOT_JSON = Symbol('not json');

function parseJson(answer: Answer): unknown {
  const type = String(headerValue(answer.headers['content-type']) ?? '');
  const text = answer.body.toString('utf8');
  const looksJson = /json/i.test(type) || /^\s*[[{]/.test(text);
  if (!looksJson || text.trim() === '') return NOT_JSON;
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function diffJson(a: unknown, b: unknown, path: string, out: Differences, depth: number, limits: Pick<ComparatorLimits, 'maxPathsPerComparison' | 'maxDepth'>): void {
  if (a === b || out.size >= limits.maxPathsPerComparison) return;
  if (depth >= limits.maxDepth) {
    if (JSON.stringify(a) !== JSON.stringify(b)) record(out, path, a, b);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) record(out, `${path}.length`, a.length, b.length);
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) diffJson(a[i], b[i], `${path}[]`, out, depth + 1, limits);
    return;
  }
  if (isObject(a) && isObject(b)) {
    for (const key of Object.keys(a)) diffJson(a[key], key in b ? b[key] : MISSING, `${path}.${key}`, out, depth + 1, limits);
    for (const key of Object.keys(b)) if (!(key in a)) record(out, `${path}.${key}`, MISSING, b[key]);
    return;
  }
  record(out, path, a, b);
}

/** The first difference seen at a path is its example (array elements share a path). */
function record(out: Differences, path: string, a: unknown, b: unknown): void {
  if (!out.has(path)) out.set(path, [a, b]);
}

/** `GET /users/{id}/orders`: numbers, UUIDs and long hex or base64-ish ids become
 *  `{id}`, so one endpoint is one route whatever its ids. */
export function routeKey(method: string, url: string): string {
  const path = url.split('?')[0] || '/';
  const segments = path.split('/').map((s) => (isIdSegment(s) ? '{id}' : s));
  return `${method.toUpperCase()} ${segments.join('/')}`;
}

function isIdSegment(s: string): boolean {
  if (s === '') return false;
  if (/^\d+$/.test(s)) return true;
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)) return true;
  return s.length >= 8 && /^[0-9a-f]+$/i.test(s) && /\d/.test(s);
}

export interface Example {
  request: string;
  primary: string;
  candidate: string;
}

interface FieldStats {
  /** Comparisons in which the candidate differed from primary on this field. */
  candidate: number;
  /** Comparisons in which secondary differed from primary: noise. */
  noise: number;
  examples: Example[];
}

interface RouteStats {
  compared: number;
  /** Sorted differing fields (joined by \n) -> comparisons; applied to noise when read. */
  signatures: Map<string, number>;
  /** Mismatches whose signature did not fit: counted as mismatches whatever the noise. */
  untracked: number;
  fields: Map<string, FieldStats>;
  untrackedFields: number;
}

export interface FieldReport {
  field: string;
  /** Comparisons in which the candidate differed on it. */
  differences: number;
  percent: number;
  examples: Example[];
}

export interface RouteReport {
  route: string;
  compared: number;
  mismatched: number;
  mismatchPercent: number;
  fields: FieldReport[];
  /** Fields on which the two stable instances disagree: ignored. */
  noisyFields: string[];
}

export interface ComparisonReport {
  compared: number;
  mismatched: number;
  /** null before anything was compared. */
  mismatchPercent: number | null;
  routes: RouteReport[];
}

const percent = (n: number, of: number) => (of > 0 ? Math.round((n / of) * 10_000) / 100 : 0);

/** The running comparison of one parallel run. */
export class Comparison {
  private readonly routes = new Map<string, RouteStats>();

  constructor(
    /** Response headers compared (lower case). */
    readonly headers: string[],
    readonly limits: ComparatorLimits = DEFAULT_COMPARATOR_LIMITS,
  ) {}

  /** Compares the three answers to one request and counts the outcome. Returns the
   *  candidate's differences that are not (yet known as) noise. */
  add(route: string, request: string, primary: Answer, secondary: Answer, candidate: Answer): string[] {
    const stats = this.route(route);
    stats.compared++;
    const noise = diffAnswers(primary, secondary, this.headers, this.limits);
    for (const field of noise.keys()) {
      const f = this.field(stats, field);
      if (f) f.noise++;
    }
    const diff = diffAnswers(primary, candidate, this.headers, this.limits);
    if (diff.size === 0) return [];
    const fields = [...diff.keys()].sort();
    for (const field of fields) {
      const f = this.field(stats, field);
      if (!f) continue;
      f.candidate++;
      if (f.examples.length < this.limits.examplesPerField) {
        const [p, c] = diff.get(field)!;
        f.examples.push({ request, primary: this.show(p), candidate: this.show(c) });
      }
    }
    const signature = fields.join('\n');
    const seen = stats.signatures.get(signature);
    if (seen !== undefined) stats.signatures.set(signature, seen + 1);
    else if (stats.signatures.size < this.limits.maxSignatures) stats.signatures.set(signature, 1);
    else stats.untracked++;
    return fields.filter((f) => !stats.fields.get(f)?.noise);
  }

  private route(key: string): RouteStats {
    let stats = this.routes.get(key);
    if (!stats) {
      const full = this.routes.size >= this.limits.maxRoutes;
      const name = full ? OTHER_ROUTE : key;
      stats = this.routes.get(name);
      if (!stats) {
        stats = { compared: 0, signatures: new Map(), untracked: 0, fields: new Map(), untrackedFields: 0 };
        this.routes.set(name, stats);
      }
    }
    return stats;
  }

  private field(stats: RouteStats, name: string): FieldStats | undefined {
    let f = stats.fields.get(name);
    if (!f) {
      if (stats.fields.size >= this.limits.maxFields) {
        stats.untrackedFields++;
        return undefined;
      }
      f = { candidate: 0, noise: 0, examples: [] };
      stats.fields.set(name, f);
    }
    return f;
  }

  private show(v: unknown): string {
    const text = v === MISSING ? '(missing)' : typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
    return text.length > this.limits.maxExampleChars ? `${text.slice(0, this.limits.maxExampleChars)}…` : text;
  }

  /** Counts with the noise known now applied to everything compared so far. */
  report(): ComparisonReport {
    const routes: RouteReport[] = [];
    for (const [route, stats] of this.routes) {
      const noisy = (f: string) => (stats.fields.get(f)?.noise ?? 0) > 0;
      let mismatched = stats.untracked;
      for (const [signature, n] of stats.signatures) if (signature.split('\n').some((f) => !noisy(f))) mismatched += n;
      const fields = [...stats.fields]
        .filter(([name, f]) => f.candidate > 0 && !noisy(name))
        .map(([field, f]) => ({ field, differences: f.candidate, percent: percent(f.candidate, stats.compared), examples: f.examples }))
        .sort((x, y) => y.differences - x.differences || (x.field < y.field ? -1 : 1));
      const noisyFields = [...stats.fields].filter(([name]) => noisy(name)).map(([name]) => name).sort();
      routes.push({ route, compared: stats.compared, mismatched, mismatchPercent: percent(mismatched, stats.compared), fields, noisyFields });
    }
    routes.sort((x, y) => y.compared - x.compared || (x.route < y.route ? -1 : 1));
    const compared = routes.reduce((n, r) => n + r.compared, 0);
    const mismatched = routes.reduce((n, r) => n + r.mismatched, 0);
    return { compared, mismatched, mismatchPercent: compared > 0 ? percent(mismatched, compared) : null, routes };
  }
}
