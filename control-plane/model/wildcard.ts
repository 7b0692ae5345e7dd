// Istio's string patterns in AuthorizationPolicy (principals, paths, header values):
// `*` alone matches any value, `prefix*` and `*suffix` match a prefix or a suffix,
// anything else is exact. A `*` anywhere else is not a pattern Istio knows.
export type Wildcard =
  | { kind: 'any' }
  | { kind: 'exact' | 'prefix' | 'suffix'; value: string };

/** The pattern a string means, or undefined when it puts `*` in the middle. */
export function parseWildcard(pattern: string): Wildcard | undefined {
  if (pattern === '*') return { kind: 'any' };
  const inner = pattern.slice(1, -1);
  if (inner.includes('*')) return undefined;
  if (pattern.startsWith('*')) return pattern.endsWith('*') ? undefined : { kind: 'suffix', value: pattern.slice(1) };
  if (pattern.endsWith('*')) return { kind: 'prefix', value: pattern.slice(0, -1) };
  return { kind: 'exact', value: pattern };
}
