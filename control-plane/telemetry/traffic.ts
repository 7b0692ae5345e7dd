// Request counts, status classes and latency histograms reported by the sidecars,
// kept per (source service, destination service) over a sliding window of 1 s slots.
// Memory is bounded whatever clients send: at most `maxSeries` edges, each with at
// most retention/slot slots; what does not fit is dropped and counted.
import { addBuckets, quantile, type Buckets } from './histogram.ts';

export interface ServiceRef {
  service: string;
  namespace: string;
}

/** What one sidecar reported for one destination in one flush. */
export interface Report {
  /** Responses by status class: index 1..5 for 1xx..5xx (index 0 unused). */
  classes?: number[];
  latency?: Buckets;
}

export interface Totals {
  requests: number;
  /** By class: 1xx..5xx. */
  status: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  latency?: Buckets;
}

export interface TrafficOptions {
  /** Longest window anyone may ask for; older slots are dropped. */
  retentionMs?: number;
  slotMs?: number;
  maxSeries?: number;
}

interface Slot {
  index: number;
  classes: Float64Array;
  latency?: Buckets;
}

interface Series {
  from: ServiceRef;
  to: ServiceRef;
  slots: Slot[];
  /** Since this control plane started, for /metrics counters. */
  total: Float64Array;
  lastAt: number;
}

export type DropReason = 'series_limit' | 'histogram_bounds';

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

export function emptyTotals(): Totals {
  return { requests: 0, status: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 } };
}

export class TrafficStore {
  readonly options: Required<TrafficOptions>;
  private readonly series = new Map<string, Series>();
  readonly dropped: Record<DropReason, number> = { series_limit: 0, histogram_bounds: 0 };

  constructor(options: TrafficOptions = {}) {
    this.options = { retentionMs: 10 * 60_000, slotMs: 1000, maxSeries: 5000, ...options };
  }

  get seriesCount(): number {
    return this.series.size;
  }

  /** Raises the retention (a Canary with a long interval needs that much history). */
  retainAtLeast(ms: number): void {
    if (ms > this.options.retentionMs) this.options.retentionMs = ms;
  }

  record(now: number, from: ServiceRef, to: ServiceRef, report: Report): void {
    const key = `${from.service}.${from.namespace}>${to.service}.${to.namespace}`;
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.options.maxSeries) this.sweep(now);
      if (this.series.size >= this.options.maxSeries) {
        this.dropped.series_limit++;
        return;
      }
      s = { from: { ...from }, to: { ...to }, slots: [], total: new Float64Array(6), lastAt: now };
      this.series.set(key, s);
    }
    s.lastAt = now;
    const index = Math.floor(now / this.options.slotMs);
    let slot = s.slots[s.slots.length - 1];
    if (!slot || slot.index !== index) {
      slot = { index, classes: new Float64Array(6) };
      s.slots.push(slot);
      const oldest = index - Math.ceil(this.options.retentionMs / this.options.slotMs);
      while (s.slots.length > 0 && s.slots[0].index <= oldest) s.slots.shift();
    }
    for (let c = 1; c <= 5; c++) {
      const n = report.classes?.[c] ?? 0;
      if (n > 0 && Number.isFinite(n)) {
        slot.classes[c] += n;
        s.total[c] += n;
      }
    }
    if (report.latency && report.latency.count > 0) {
      if (!slot.latency) slot.latency = cloneBuckets(report.latency);
      else if (!addBuckets(slot.latency, report.latency)) this.dropped.histogram_bounds++;
    }
  }

  /** Per edge, what arrived in [since, until). */
  edges(since: number, until = Infinity): { from: ServiceRef; to: ServiceRef; totals: Totals }[] {
    const out: { from: ServiceRef; to: ServiceRef; totals: Totals }[] = [];
    const first = Math.floor(since / this.options.slotMs);
    const last = until === Infinity ? Infinity : Math.floor((until - 1) / this.options.slotMs);
    for (const s of this.series.values()) {
      const totals = emptyTotals();
      let any = false;
      for (const slot of s.slots) {
        if (slot.index < first || slot.index > last) continue;
        any = true;
        addSlot(totals, slot, this.dropped);
      }
      if (any) out.push({ from: s.from, to: s.to, totals });
    }
    return out;
  }

  /** Everything sent to one destination service in [since, until), from any source. */
  destination(to: ServiceRef, since: number, until = Infinity): Totals {
    const totals = emptyTotals();
    for (const e of this.edges(since, until)) {
      if (e.to.service === to.service && e.to.namespace === to.namespace) mergeTotals(totals, e.totals, this.dropped);
    }
    return totals;
  }

  /** Since start, per edge and class (for Prometheus counters). */
  lifetime(): { from: ServiceRef; to: ServiceRef; byClass: Record<(typeof CLASSES)[number], number> }[] {
    return [...this.series.values()].map((s) => ({
      from: s.from,
      to: s.to,
      byClass: Object.fromEntries(CLASSES.map((c, i) => [c, s.total[i + 1]])) as Record<(typeof CLASSES)[number], number>,
    }));
  }

  /** Drops series with nothing inside the retention window. */
  sweep(now: number): void {
    for (const [key, s] of this.series) if (now - s.lastAt > this.options.retentionMs) this.series.delete(key);
  }
}

function cloneBuckets(b: Buckets): Buckets {
  return { bounds: [...b.bounds], cumulative: [...b.cumulative], count: b.count };
}

function addSlot(totals: Totals, slot: Slot, dropped: Record<DropReason, number>): void {
  for (let c = 1; c <= 5; c++) {
    totals.status[CLASSES[c - 1]] += slot.classes[c];
    totals.requests += slot.classes[c];
  }
  if (slot.latency) {
    if (!totals.latency) totals.latency = cloneBuckets(slot.latency);
    else if (!addBuckets(totals.latency, slot.latency)) dropped.histogram_bounds++;
  }
}

export function mergeTotals(into: Totals, t: Totals, dropped?: Record<DropReason, number>): void {
  into.requests += t.requests;
  for (const c of CLASSES) into.status[c] += t.status[c];
  if (t.latency) {
    if (!into.latency) into.latency = cloneBuckets(t.latency);
    else if (!addBuckets(into.latency, t.latency) && dropped) dropped.histogram_bounds++;
  }
}

/** Rounded to 0.1 ms; null without latency samples. */
export function percentileMs(t: Totals, q: number): number | null {
  const v = t.latency ? quantile(t.latency, q) : null;
  return v === null ? null : Math.round(v * 10) / 10;
}
