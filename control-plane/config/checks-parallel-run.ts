// Checks of ParallelRun Canaries across documents. The comparator reaches stable and
// candidate instances in plaintext (it has no workload certificate of its own), so a
// ParallelRun whose backends take only mTLS (STRICT) is refused here rather than
// left to fail every comparison.
import { effectiveMtlsMode, type MeshModel } from '../model/types.ts';
import type { ConfigError } from './load.ts';

export function checkParallelRuns(model: MeshModel, errors: ConfigError[]): void {
  for (const c of model.canaries ?? []) {
    if (c.strategy !== 'ParallelRun') continue;
    for (const [role, ref] of [['stable', c.stable], ['canary', c.canary]] as const) {
      if (effectiveMtlsMode(model, ref.service, ref.namespace) !== 'STRICT') continue;
      errors.push({
        file: c.source?.file ?? '',
        line: c.source?.line ?? 0,
        message:
          `Canary ${c.namespace}/${c.name}: strategy ParallelRun needs the comparator to reach ${role} ${ref.service} in plaintext, ` +
          `but its mTLS mode is STRICT; set PERMISSIVE for ${ref.service} (a MeshConfig with targetRefs) while the parallel run lasts`,
      });
    }
  }
}
