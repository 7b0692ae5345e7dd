import test from 'ava';
import type { MeshModel } from '../../control-plane/model/types.ts';
import { Reconciler } from '../../control-plane/reconcile/reconciler.ts';
import { SnapshotCache } from '../../control-plane/xds/cache/cache.ts';
import type { Snapshot } from '../../control-plane/xds/cache/snapshot.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';

const svc = (name: string) => ({ name, namespace: 'default', ports: [{ name: 'http', port: 80, targetPort: 80, appProtocol: 'http' as const }] });
const model = (...names: string[]): MeshModel => ({ services: names.map(svc), routes: [], policies: [], endpoints: [] });
const clusters = (s: Snapshot) => [...s.get(TypeUrl.Cluster).resources.keys()].sort();

test('a cluster that leaves the config is served for a grace period, then removed', async (t) => {
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache, { debounceMs: 1, retireGraceMs: 200 });
  t.teardown(() => reconciler.close());
  reconciler.setModel(model('a', 'b'));
  const group = reconciler.groupOf({ id: 'n', user_agent_name: 'envoy' });
  let latest: Snapshot | undefined;
  cache.watch(group, (s) => (latest = s));
  t.deepEqual(clusters(latest!), ['outbound|80||a.default', 'outbound|80||b.default']);

  reconciler.setModel(model('a'));
  reconciler.rebuildAll();
  t.deepEqual(clusters(latest!), ['outbound|80||a.default', 'outbound|80||b.default'], 'b is still served');
  t.true(latest!.get(TypeUrl.ClusterLoadAssignment).resources.has('outbound|80||b.default'), 'with its endpoints');
  const routes = JSON.stringify([...latest!.get(TypeUrl.RouteConfiguration).resources.values()].map((r) => r.object));
  t.false(routes.includes('b.default'), 'but no route leads to it any more');

  await new Promise((r) => setTimeout(r, 400));
  t.deepEqual(clusters(latest!), ['outbound|80||a.default'], 'gone after the grace period');
});

test('a config that cannot be translated for a watched proxy is refused before anything is published', (t) => {
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache);
  t.teardown(() => reconciler.close());
  reconciler.setModel(model('a'));
  const group = reconciler.groupOf({ id: 'n', user_agent_name: 'envoy' });
  cache.watch(group, () => {});
  const broken = model('a', 'a'); // the same service twice: two clusters of one name
  const before = cache.getSnapshot(group);
  t.throws(() => reconciler.applyModel(broken), { message: /appears twice/ });
  t.is(cache.getSnapshot(group), before, 'the last good snapshot is still served');
  t.notThrows(() => reconciler.applyModel(model('a', 'b')));
  t.deepEqual(clusters(cache.getSnapshot(group)!), ['outbound|80||a.default', 'outbound|80||b.default']);
});
