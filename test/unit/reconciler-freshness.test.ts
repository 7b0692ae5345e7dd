// The reconciler builds snapshots incrementally and shares them between groups; these
// tests drive it with random sequences of config changes, endpoint changes, connects
// and disconnects and check, after every step, that every group's snapshot is exactly
// what a from-scratch translation of the current inputs gives.
import test from 'ava';
import type { Endpoint, MeshModel, ProxyContext } from '../../control-plane/model/types.ts';
import { Reconciler } from '../../control-plane/reconcile/reconciler.ts';
import { translate } from '../../control-plane/translate/index.ts';
import { SnapshotCache } from '../../control-plane/xds/cache/cache.ts';
import { Snapshot } from '../../control-plane/xds/cache/snapshot.ts';
import { ADS_ORDER } from '../../control-plane/xds/resources/type-urls.ts';
import type { XdsNode } from '../../control-plane/xds/server/types.ts';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed by seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: T[]) => xs[Math.floor(next() * xs.length)] };
}

const SERVICES = ['a', 'b', 'c', 'd', 'e'];
const ZONES = [undefined, 'z1', 'z2'];

function randomModel(r: ReturnType<typeof prng>): MeshModel {
  const services = SERVICES.filter(() => r.next() < 0.7).map((name) => ({
    name,
    namespace: r.next() < 0.8 ? 'default' : 'other',
    ports: [{ name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' as const }],
  }));
  const routes =
    services.length >= 2 && r.next() < 0.6
      ? [
          {
            kind: 'HTTPRoute' as const,
            name: 'split',
            namespace: services[0].namespace,
            parents: [{ service: services[0].name, namespace: services[0].namespace }],
            rules: [
              {
                matches: [],
                filters: [],
                backends: [
                  { service: services[0].name, namespace: services[0].namespace, weight: 1 + r.int(99) },
                  { service: services[1].name, namespace: services[1].namespace, weight: 1 + r.int(99) },
                ],
              },
            ],
          },
        ]
      : [];
  const endpoints: Endpoint[] = services
    .filter(() => r.next() < 0.3)
    .map((s) => ({ id: `file-${s.name}`, service: s.name, namespace: s.namespace, address: '10.9.9.9', port: 8080, labels: {}, health: 'healthy', source: 'file' }));
  return { services, routes, policies: [], endpoints };
}

function randomEndpoints(r: ReturnType<typeof prng>): Endpoint[] {
  const out: Endpoint[] = [];
  // Some of these services are declared by no config: registering creates them.
  for (const name of [...SERVICES, 'implied-x', 'implied-y']) {
    const count = r.int(4);
    for (let i = 0; i < count; i++) {
      out.push({
        id: `${name}-${i}`,
        service: name,
        namespace: 'default',
        address: `10.0.${SERVICES.indexOf(name) + 2}.${i + 1}`,
        port: name.startsWith('implied') ? 9000 + r.int(2) : 8080,
        labels: {},
        zone: r.pick(ZONES),
        health: r.pick(['healthy', 'healthy', 'unhealthy', 'unknown'] as const),
        source: 'registry',
      });
    }
  }
  return out;
}

function randomNode(r: ReturnType<typeof prng>, i: number): XdsNode {
  const zone = r.pick(ZONES);
  const locality = zone ? { zone } : {};
  if (r.next() < 0.3) return { id: `grpc-${i}`, locality };
  const service = r.pick(SERVICES);
  const fields: Record<string, unknown> = { mode: { stringValue: 'sidecar' }, service: { stringValue: service } };
  if (r.next() < 0.5) fields.namespace = { stringValue: 'other' };
  if (r.next() < 0.7) {
    fields.inbound = { structValue: { fields: { port: { numberValue: 9000 + r.int(3) }, app_port: { numberValue: 8080 } } } };
  }
  return { id: `envoy-${i}`, user_agent_name: 'envoy', locality, metadata: { fields: { tessera: { structValue: { fields } } } } as any };
}

/** What a group should be served now: a translation from scratch. */
function expected(model: MeshModel, registry: Endpoint[], context: ProxyContext): Snapshot {
  const declared = new Set(model.services.map((s) => `${s.name}.${s.namespace}`));
  const implied = new Map<string, MeshModel['services'][number]>();
  for (const e of registry) {
    const key = `${e.service}.${e.namespace}`;
    if (declared.has(key) || implied.has(key)) continue;
    implied.set(key, { name: e.service, namespace: e.namespace, ports: [{ name: 'http', port: e.port, targetPort: e.port, appProtocol: 'http' }] });
  }
  const served = { ...model, services: [...model.services, ...[...implied.values()].sort((a, b) => a.name.localeCompare(b.name))] };
  return Snapshot.fromResources(translate({ model: served, endpoints: [...model.endpoints, ...registry], proxy: context }));
}

function sameContent(t: any, actual: Snapshot | undefined, wanted: Snapshot, what: string): boolean {
  if (!actual) {
    t.fail(`${what}: no snapshot`);
    return false;
  }
  for (const typeUrl of ADS_ORDER) {
    if (actual.get(typeUrl).version !== wanted.get(typeUrl).version) {
      const names = (s: Snapshot) => [...s.get(typeUrl).resources.values()].map((r) => `${r.name}@${r.version}`);
      t.fail(`${what}: ${typeUrl} differs\n actual ${names(actual).join(' ')}\n wanted ${names(wanted).join(' ')}`);
      return false;
    }
  }
  return true;
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`seed ${seed}: after every change, connect and disconnect, every group's snapshot equals a fresh translation`, (t) => {
    const r = prng(seed);
    const cache = new SnapshotCache();
    const reconciler = new Reconciler(cache, { debounceMs: 1_000_000, retireGraceMs: 0, idleGraceMs: 0 });
    t.teardown(() => reconciler.close());
    let model: MeshModel = { services: [], routes: [], policies: [], endpoints: [] };
    let registry: Endpoint[] = [];
    const watches: { group: string; cancel: () => void; latest?: Snapshot }[] = [];
    let ok = true;

    for (let step = 0; step < 100 && ok; step++) {
      const action = r.int(6);
      if (action === 0) {
        model = randomModel(r);
        reconciler.applyModel(model);
      } else if (action === 5) {
        // An EndpointSlice edit: the same model with other declared instances.
        const declared = model.services.filter(() => r.next() < 0.5);
        model = {
          ...model,
          endpoints: declared.map((s, i) => ({ id: `file-${s.name}-${i}`, service: s.name, namespace: s.namespace, address: `10.8.0.${i + 1}`, port: 8080, labels: {}, health: 'healthy' as const, source: 'file' as const })),
        };
        reconciler.applyModel(model);
      } else if (action === 1) {
        registry = randomEndpoints(r);
        // Not flushed: a proxy connecting now must still get the new state.
        reconciler.setEndpoints(registry);
      } else if (action === 2 || action === 3) {
        const group = reconciler.groupOf(randomNode(r, step));
        const w: (typeof watches)[number] = { group, cancel: () => {} };
        w.cancel = cache.watch(group, (s) => (w.latest = s));
        watches.push(w);
        // Served at once on connect, and current, though changes may be pending.
        ok = sameContent(t, w.latest, expected(model, registry, reconciler.contextOf(group)!), `step ${step}: first snapshot of a new watch`);
      } else if (watches.length > 0) {
        watches.splice(r.int(watches.length), 1)[0].cancel();
      }
      if (!ok) break;
      // Changes are applied now and then, so some connects find them still pending.
      if (r.next() < 0.5) continue;
      reconciler.flush();
      // Every group, watched or not, is current once the change is applied.
      for (const group of cache.groups()) {
        const context = reconciler.contextOf(group);
        if (!context) continue;
        ok = sameContent(t, cache.getSnapshot(group), expected(model, registry, context), `step ${step}: group ${group}`);
        if (!ok) break;
      }
      for (const w of watches) {
        ok = ok && sameContent(t, w.latest, cache.getSnapshot(w.group)!, `step ${step}: what watcher of ${w.group} last got`);
      }
    }
    if (ok) t.pass();
  });
}

test('a group nobody watches is rebuilt on every change, so a reconnect after a change gets it at once', (t) => {
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache, { debounceMs: 1 });
  t.teardown(() => reconciler.close());
  const svc = { name: 'a', namespace: 'default', ports: [{ name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' as const }] };
  reconciler.applyModel({ services: [svc], routes: [], policies: [], endpoints: [] });
  const group = reconciler.groupOf({ id: 'n', user_agent_name: 'envoy' });
  const cancel = cache.watch(group, () => {});
  cancel();
  const endpoint: Endpoint = { id: 'a-1', service: 'a', namespace: 'default', address: '10.0.0.1', port: 8080, labels: {}, health: 'healthy', source: 'registry' };
  reconciler.setEndpoints([endpoint]);
  reconciler.flush();
  const eds = cache.getSnapshot(group)!.get('type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment');
  t.true(JSON.stringify([...eds.resources.values()].map((r) => r.object)).includes('10.0.0.1'));
});

test('groups without watchers are dropped after the idle grace period, and the number of groups is bounded', async (t) => {
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache, { idleGraceMs: 100, maxGroups: 3 });
  t.teardown(() => reconciler.close());
  const node = (port: number): XdsNode => ({
    id: `n${port}`,
    user_agent_name: 'envoy',
    metadata: { fields: { tessera: { structValue: { fields: { inbound: { structValue: { fields: { port: { numberValue: port }, app_port: { numberValue: 1 } } } } } } } } } as any,
  });
  const cancels = [1, 2, 3].map((p) => cache.watch(reconciler.groupOf(node(p)), () => {}));
  t.is(reconciler.groupCount, 3);
  t.throws(() => reconciler.groupOf(node(4)), { code: 'TESSERA_ERR_TOO_MANY_PROXY_GROUPS' } as any, 'a fourth shape of metadata is refused while all are in use');
  cancels[0]();
  t.notThrows(() => reconciler.groupOf(node(4)), 'an idle group makes room');
  t.is(reconciler.groupCount, 3);
  cancels[1]();
  cancels[2]();
  await new Promise((r) => setTimeout(r, 400));
  t.is(reconciler.groupCount, 0, 'idle groups are gone after the grace period');
  t.deepEqual(cache.groups(), []);
});
