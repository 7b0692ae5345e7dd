import test from 'ava';
import { SnapshotCache } from '../../control-plane/xds/cache/cache.ts';
import { Snapshot } from '../../control-plane/xds/cache/snapshot.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';
import { XdsServer } from '../../control-plane/xds/server/server.ts';
import type { AckInfo, RpcStatus } from '../../control-plane/xds/server/types.ts';
import { connect } from '../support/ads-client.ts';
import { decodeAny } from '../../control-plane/xds/resources/codec.ts';

const node = { id: 'proxy-1', cluster: 'test' };

function cluster(name: string, timeoutSeconds = 1) {
  return {
    name,
    resource: {
      name,
      type: 'EDS',
      connect_timeout: { seconds: timeoutSeconds },
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
    },
  };
}
function assignment(name: string, port: number) {
  return {
    name,
    resource: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  };
}
function snapshot(clusters: Record<string, number>, timeoutSeconds = 1) {
  return Snapshot.fromResources({
    [TypeUrl.Cluster]: Object.keys(clusters).map((n) => cluster(n, timeoutSeconds)),
    [TypeUrl.ClusterLoadAssignment]: Object.entries(clusters).map(([n, p]) => assignment(n, p)),
  });
}

async function setup(t: any) {
  const cache = new SnapshotCache();
  const acks: AckInfo[] = [];
  const nacks: (AckInfo & { error: RpcStatus })[] = [];
  const server = new XdsServer({
    cache,
    group: () => 'g',
    callbacks: { onAck: (_s, a) => acks.push(a), onNack: (_s, n) => nacks.push(n) },
  });
  const port = await server.listen('127.0.0.1:0');
  const client = connect(port);
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  return { cache, client, acks, nacks, server };
}

test('a wildcard CDS subscription made before any config exists is answered once config arrives', async (t) => {
  const { cache, client } = await setup(t);
  const s = client.sotw();
  s.send({ node, type_url: TypeUrl.Cluster });
  t.true(await s.quiet(0, 200));
  cache.setSnapshot('g', snapshot({ a: 1001, b: 1002 }));
  const r = await s.nth(1);
  t.is(r.type_url, TypeUrl.Cluster);
  t.deepEqual(r.resources.map((any) => decodeAny(any).name), ['a', 'b']);
});

test('EDS is answered per name, and only for the names asked', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001, b: 1002 }));
  const s = client.sotw();
  s.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['b'] });
  const r = await s.nth(1);
  t.deepEqual(r.resources.map((any) => decodeAny(any).cluster_name), ['b']);
});

test('an ACK and a NACK are told apart by error_detail, and a NACKed version is not resent', async (t) => {
  const { cache, client, acks, nacks } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001 }));
  const s = client.sotw();
  s.send({ node, type_url: TypeUrl.Cluster });
  const first = await s.nth(1);
  s.send({ type_url: TypeUrl.Cluster, version_info: first.version_info, response_nonce: first.nonce });
  cache.setSnapshot('g', snapshot({ a: 1001 }, 2));
  const second = await s.nth(2);
  t.not(second.version_info, first.version_info);
  // A NACK carries the last accepted version, as Envoy sends it.
  s.send({ type_url: TypeUrl.Cluster, version_info: first.version_info, response_nonce: second.nonce, error_detail: { code: 3, message: 'bad cluster' } });
  t.true(await s.quiet(2, 400), 'the rejected version must not be pushed again');
  t.is(acks.length, 1);
  t.is(acks[0].version, first.version_info);
  t.is(nacks.length, 1);
  t.is(nacks[0].version, second.version_info);
  t.is(nacks[0].error.message, 'bad cluster');
  // A new version after the NACK is pushed.
  cache.setSnapshot('g', snapshot({ a: 1001 }, 3));
  const third = await s.nth(3);
  t.not(third.version_info, second.version_info);
});

test('a request with a stale nonce is ignored', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001 }));
  const s = client.sotw();
  s.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a'] });
  const first = await s.nth(1);
  cache.setSnapshot('g', snapshot({ a: 1003 }));
  const second = await s.nth(2);
  // Answering the first nonce while asking for another name: superseded, so ignored.
  s.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a', 'zzz'], response_nonce: first.nonce, version_info: first.version_info });
  t.true(await s.quiet(2, 300));
  s.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a'], response_nonce: second.nonce, version_info: second.version_info });
  t.true(await s.quiet(2, 300), 'an ACK of the current version gets no response');
});

test('SotW EDS names: the same list again changes nothing; a list with a name dropped or added (duplicates, any order) is answered', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001, b: 1002, c: 1003 }));
  const s = client.sotw();
  const names = (r: { resources: unknown[] }) => r.resources.map((any) => decodeAny(any as never).cluster_name);
  s.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a', 'b'] });
  const first = await s.nth(1);
  t.deepEqual(names(first), ['a', 'b']);
  const ack = (r: { nonce: string; version_info: string }, resource_names: string[]) =>
    s.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names, response_nonce: r.nonce, version_info: r.version_info });
  ack(first, ['a', 'b']);
  ack(first, ['b', 'a', 'a']);
  t.true(await s.quiet(1, 300), 'the same names, repeated or reordered, get no response');
  // Same length as the last list but one name short: a set, not a count.
  ack(first, ['a', 'a']);
  const second = await s.nth(2);
  t.deepEqual(names(second), ['a']);
  ack(second, ['a', 'c']);
  t.deepEqual(names(await s.nth(3)), ['a', 'c']);
});

test('streams in step share a response buffer, yet each is sent its own nonce', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001 }));
  const streams = [client.sotw(), client.sotw(), client.sotw()];
  for (const s of streams) s.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a'] });
  const firsts = await Promise.all(streams.map((s) => s.nth(1)));
  for (const [i, s] of streams.entries()) s.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a'], response_nonce: firsts[i].nonce, version_info: firsts[i].version_info });
  // One stream pushes once more, so its nonces run ahead of the others'.
  streams[0].send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a', 'zz'], response_nonce: firsts[0].nonce, version_info: firsts[0].version_info });
  await streams[0].nth(2);
  cache.setSnapshot('g', snapshot({ a: 1002 }));
  const [ahead, ...inStep] = await Promise.all([streams[0].nth(3), streams[1].nth(2), streams[2].nth(2)]);
  t.not(ahead.nonce, inStep[0].nonce);
  t.is(inStep[0].nonce, inStep[1].nonce, 'per-stream nonces, equal for streams in step');
  for (const r of [ahead, ...inStep]) t.is(r.version_info, inStep[0].version_info);
});

test('a reconnecting client that already holds the current version is not sent it again', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001 }));
  const s1 = client.sotw();
  s1.send({ node, type_url: TypeUrl.Cluster });
  const first = await s1.nth(1);
  s1.close();
  const s2 = client.sotw();
  s2.send({ node, type_url: TypeUrl.Cluster, version_info: first.version_info });
  t.true(await s2.quiet(0, 300));
  cache.setSnapshot('g', snapshot({ a: 1001, b: 1002 }));
  t.is((await s2.nth(1)).resources.length, 2);
});

test('LDS legacy wildcard ends when names are given; RDS with no names means nothing', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001, b: 1002 }));
  const s = client.sotw();
  s.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: [] });
  const r = await s.nth(1);
  t.is((r.resources ?? []).length, 0, 'proto3 leaves an empty list out');
  s.send({ type_url: TypeUrl.Cluster, resource_names: ['b'] });
  const c = await s.nth(2);
  t.deepEqual(c.resources.map((any) => decodeAny(any).name), ['b']);
});

test('delta sends only what changed, with removals, and honours unsubscribe', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001, b: 1002 }));
  const s = client.delta();
  s.send({ node, type_url: TypeUrl.Cluster });
  const first = await s.nth(1);
  t.deepEqual(first.resources.map((r) => r.name).sort(), ['a', 'b']);
  s.send({ type_url: TypeUrl.Cluster, response_nonce: first.nonce });

  cache.setSnapshot('g', snapshot({ a: 1001, c: 1003 }));
  const second = await s.nth(2);
  t.deepEqual(second.resources.map((r) => r.name), ['c']);
  t.deepEqual(second.removed_resources, ['b']);

  s.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names_subscribe: ['a', 'c'] });
  const eds = await s.nth(3);
  t.deepEqual(eds.resources.map((r) => r.name).sort(), ['a', 'c']);
  s.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names_unsubscribe: ['c'], response_nonce: eds.nonce });
  t.true(await s.quiet(3, 200));
  cache.setSnapshot('g', snapshot({ a: 1001, c: 1009 }, 2));
  // Only the CDS change reaches the client: it no longer watches EDS for c.
  const next = await s.nth(4);
  t.is(next.type_url, TypeUrl.Cluster);
  t.true(await s.quiet(4, 300));
});

test('a delta client resuming with initial_resource_versions gets only what differs', async (t) => {
  const { cache, client } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001, b: 1002 }));
  const s1 = client.delta();
  s1.send({ node, type_url: TypeUrl.Cluster });
  const first = await s1.nth(1);
  const versions = Object.fromEntries(first.resources.map((r) => [r.name, r.version]));
  s1.close();
  cache.setSnapshot('g', snapshot({ a: 1001 }, 5));
  const s2 = client.delta();
  s2.send({ node, type_url: TypeUrl.Cluster, initial_resource_versions: versions });
  const r = await s2.nth(1);
  t.deepEqual(r.resources.map((x) => x.name), ['a']);
  t.deepEqual(r.removed_resources, ['b']);
});

test('a delta NACK is recorded and the rejected resource is not resent', async (t) => {
  const { cache, client, nacks } = await setup(t);
  cache.setSnapshot('g', snapshot({ a: 1001 }));
  const s = client.delta();
  s.send({ node, type_url: TypeUrl.Cluster });
  const first = await s.nth(1);
  s.send({ type_url: TypeUrl.Cluster, response_nonce: first.nonce, error_detail: { code: 3, message: 'nope' } });
  t.true(await s.quiet(1, 400));
  t.is(nacks.length, 1);
  t.is(nacks[0].error.message, 'nope');
});

test('a stream whose first request has no node id is ended with an error', async (t) => {
  const { client } = await setup(t);
  const s = client.sotw();
  const ended = new Promise<any>((resolve) => s.call.on('error', resolve));
  s.send({ type_url: TypeUrl.Cluster });
  const err = await ended;
  t.regex(String(err.details), /node\.id/);
});

test('an inconsistent snapshot (a cluster without its endpoints) is refused', (t) => {
  const err = t.throws(() => Snapshot.fromResources({ [TypeUrl.Cluster]: [cluster('lonely')] }));
  t.regex(err!.message, /CDS lonely references EDS lonely, which is missing/);
});
