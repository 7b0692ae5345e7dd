// Gateway API durations: one to four number+unit pairs, units h, m, s, ms ("1h30m", "500ms").
const DURATION = /^(?:\d{1,5}(?:h|m|s|ms)){1,4}$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

export function isDuration(value: string): boolean {
  return DURATION.test(value);
}

export function parseDuration(value: string): number {
  if (!isDuration(value)) throw new Error(`${JSON.stringify(value)} is not a duration (examples: 500ms, 2s, 1m, 1h30m)`);
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+)(ms|h|m|s)/g)) ms += Number(n) * UNIT_MS[unit];
  return ms;
}
