// The parts of a Canary that belong to one strategy: `parallelRun` and
// `analysis.maxMismatchPercent` for ParallelRun; `steps`, `match`, `mirror`,
// `iterations`, `successRate`, `latencyP99` and `analysis.provider` for Canary and BlueGreen. A field of the other strategy is refused at its line
// rather than ignored.
import { PARALLEL_RUN_DEFAULTS, type CanarySpec } from '../model/types.ts';

// biome-ignore lint/suspicious/noExplicitAny: the spec is checked against its JSON schema (ajv) before conversion
type Spec = Record<string, any>;
type Fail = (at: (string | number)[], message: string) => void;

/** Checks the strategy's own fields; returns the ParallelRun settings for that strategy.
 *  (The fields of strategies Canary and BlueGreen among themselves are checked by
 *  convert.ts's canaryTest.) */
export function strategyFields(strategy: 'Canary' | 'BlueGreen' | 'ParallelRun', s: Spec, fail: Fail): Pick<CanarySpec, 'parallelRun'> {
  const analysis = s.analysis ?? {};
  if (strategy !== 'ParallelRun') {
    if (s.parallelRun !== undefined) fail(['spec', 'parallelRun'], 'parallelRun applies to strategy ParallelRun only');
    if (analysis.maxMismatchPercent !== undefined) {
      fail(['spec', 'analysis', 'maxMismatchPercent'], 'analysis.maxMismatchPercent applies to strategy ParallelRun only');
    }
    return {};
  }
  if (s.steps !== undefined) {
    fail(['spec', 'steps'], 'steps do not apply to strategy ParallelRun: the candidate answers no caller until it is promoted, then it gets all traffic');
  }
  for (const field of ['match', 'mirror', 'iterations'] as const) {
    if (s[field] !== undefined) {
      fail(['spec', field], `${field} does not apply to strategy ParallelRun: it mirrors the target's requests to the comparator and is judged by analysis.maxMismatchPercent`);
    }
  }
  for (const field of ['successRate', 'latencyP99'] as const) {
    if (analysis[field] !== undefined) {
      fail(['spec', 'analysis', field], `analysis.${field} applies to strategy Canary; a ParallelRun is judged by analysis.maxMismatchPercent`);
    }
  }
  if (analysis.provider !== undefined) {
    fail(['spec', 'analysis', 'provider'], 'analysis.provider does not apply to strategy ParallelRun: it is judged by the comparator\'s mismatches, which no metrics provider has');
  }
  const p = s.parallelRun ?? {};
  return {
    parallelRun: {
      methods: p.methods ?? [...PARALLEL_RUN_DEFAULTS.methods],
      headers: (p.headers ?? PARALLEL_RUN_DEFAULTS.headers).map((h: string) => h.toLowerCase()),
      percent: p.percent ?? PARALLEL_RUN_DEFAULTS.percent,
    },
  };
}
