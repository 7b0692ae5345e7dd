// Logging NACKs without letting a client flood the log. The xDS port takes any
// client, and a NACK's error text is the client's to choose (megabytes, thousands a
// second): each line is cut to a bounded length, and per (node, type) at most one
// line is written per window; what was left out is counted in the next line. The
// tessera_xds_nacks_total metric still counts every NACK.

export interface NackLogOptions {
  /** Characters of the error text kept in a line. */
  maxErrorChars?: number;
  /** At most one line per (node, type) in this window. */
  windowMs?: number;
  /** At most this many lines in all per window, whatever the number of nodes. */
  maxLinesPerWindow?: number;
  now?: () => number;
}

export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max)}… (${flat.length - max} more characters)`;
}

export class NackLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  private windowStart = 0;
  private linesInWindow = 0;
  private suppressedOverall = 0;

  constructor(
    private readonly write: (line: string) => void,
    private readonly options: NackLogOptions = {},
  ) {}

  nack(nodeId: string, type: string, version: string, error: string): void {
    const now = (this.options.now ?? Date.now)();
    const windowMs = this.options.windowMs ?? 10_000;
    if (now - this.windowStart >= windowMs) {
      if (this.suppressedOverall > 0) this.write(`NACK log: ${this.suppressedOverall} more NACK lines left out in the last ${windowMs / 1000} s (see tessera_xds_nacks_total)`);
      this.windowStart = now;
      this.linesInWindow = 0;
      this.suppressedOverall = 0;
    }
    const key = `${nodeId}\0${type}`;
    const entry = this.last.get(key);
    if (entry && now - entry.at < windowMs) {
      entry.suppressed++;
      return;
    }
    if (this.linesInWindow >= (this.options.maxLinesPerWindow ?? 20)) {
      this.suppressedOverall++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    if (this.last.size > 10_000) this.last.delete(this.last.keys().next().value!);
    this.linesInWindow++;
    const more = suppressed > 0 ? ` (and ${suppressed} more NACKs from this node for ${type} since the last line)` : '';
    this.write(`NACK from ${truncate(nodeId, 200)} for ${type} version ${truncate(version, 100)}: ${truncate(error, this.options.maxErrorChars ?? 500)}${more}`);
  }
}
