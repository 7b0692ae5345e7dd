import test from 'ava';
import { ownerOf } from '../../control-plane/registry/etcd-store.ts';

const instances = Array.from({ length: 3000 }, (_, i) => `svc-${i % 30}/i-${i}`);

test('health checks are divided among replicas, each instance to exactly one', (t) => {
  const replicas = ['r1', 'r2', 'r3'];
  const counts: Record<string, number> = {};
  for (const i of instances) counts[ownerOf(i, replicas)!] = (counts[ownerOf(i, replicas)!] ?? 0) + 1;
  for (const r of replicas) t.true(counts[r] > 800 && counts[r] < 1200, `${r} checks ${counts[r]}`);
});

test('when a replica dies only its instances move, and the order of the list does not matter', (t) => {
  const before = new Map(instances.map((i) => [i, ownerOf(i, ['r1', 'r2', 'r3'])]));
  for (const i of instances) {
    const after = ownerOf(i, ['r3', 'r1']);
    if (before.get(i) !== 'r2') t.is(after, before.get(i));
    else t.not(after, 'r2');
  }
});
