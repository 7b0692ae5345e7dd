// Latency percentiles from Envoy's histogram buckets: cumulative counts per upper
// bound (ms), as the metrics service sends `upstream_rq_time` for one flush interval.

export interface Buckets {
  /** Upper bounds in ms, increasing (Envoy's defaults: 0.5, 1, 5, 10, 25, … 3600000). */
  bounds: number[];
  /** Samples at or below each bound (cumulative, same length as bounds). */
  cumulative: number[];
  /** All samples, including any above the last bound. */
  count: number;
}

/** Adds `b` into `into` (same bounds); false when the bounds differ. */
export function addBuckets(into: Buckets, b: Buckets): boolean {
  if (into.bounds.length !== b.bounds.length || into.bounds.some((x, i) => x !== b.bounds[i])) return false;
  for (let i = 0; i < b.cumulative.length; i++) into.cumulative[i] += b.cumulative[i];
  into.count += b.count;
  return true;
}

/** The q-quantile (0..1) in ms, interpolated linearly inside its bucket (as
 *  Prometheus' histogram_quantile); null without samples. A rank beyond the last
 *  bound is reported as the last bound: the true value is at least that. */
export function quantile(b: Buckets, q: number): number | null {
  if (b.count <= 0) return null;
  const rank = q * b.count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (let i = 0; i < b.bounds.length; i++) {
    const upper = b.bounds[i];
    const count = b.cumulative[i];
    if (count >= rank && count > lowerCount) {
      return lowerBound + ((upper - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = upper;
    lowerCount = count;
  }
  return b.bounds[b.bounds.length - 1] ?? null;
}
