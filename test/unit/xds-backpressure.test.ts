// A client that stops reading must not make the server buffer every push: while the
// transport is full only the latest state per type is owed, and a client that stays
// stuck is disconnected. Real gRPC on both sides; the client really stops reading.
import test from 'ava';
import { SnapshotCache } from '../../control-plane/xds/cache/cache.ts';
import { Snapshot } from '../../control-plane/xds/cache/snapshot.ts';
import { decodeAny } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';
import { XdsServer } from '../../control-plane/xds/server/server.ts';
import { connect } from '../support/ads-client.ts';

const node = { id: 'slow-1', cluster: 'test' };

/** ~200 KB of clusters; `generation` changes every one of them. */
function bigSnapshot(generation: number) {
  const clusters = Array.from({ length: 50 }, (_, i) => {
    const name = `c${i}-${'x'.repeat(4000)}`;
    return { name, resource: { name, type: 'STATIC', connect_timeout: { seconds: 1 + generation } } };
  });
  return Snapshot.fromResources({ [TypeUrl.Cluster]: clusters });
}

async function setup(t: any, stuckTimeoutMs: number) {
  const cache = new SnapshotCache();
  let pushes = 0;
  const errors: string[] = [];
  const server = new XdsServer({
    cache,
    group: () => 'g',
    stuckTimeoutMs,
    callbacks: { onPush: () => pushes++, onProtocolError: (_s, m) => errors.push(m) },
  });
  const port = await server.listen('127.0.0.1:0');
  const client = connect(port);
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  return { cache, client, server, errors, pushes: () => pushes };
}

test('a client that stops reading is sent only the latest version once it reads again', async (t) => {
  const { cache, client, pushes } = await setup(t, 30_000);
  cache.setSnapshot('g', bigSnapshot(0));
  const s = client.sotw();
  s.send({ node, type_url: TypeUrl.Cluster });
  await s.nth(1);
  const published = 200;
  const snapshots = Array.from({ length: published }, (_, g) => bigSnapshot(g + 1));
  s.call.pause();
  for (const snapshot of snapshots) {
    cache.setSnapshot('g', snapshot);
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 300));
  const whileStuck = pushes();
  t.true(whileStuck < 40, `${whileStuck} pushes were made for ${published} snapshots while the client did not read`);
  s.call.resume();
  await new Promise((r) => setTimeout(r, 1000));
  const last = s.responses[s.responses.length - 1];
  const timeout = decodeAny(last.resources[0]).connect_timeout as { seconds: number };
  t.is(Number(timeout.seconds), 1 + published, 'the last response carries the latest snapshot');
  t.true(s.responses.length < 45, `${s.responses.length} responses in all`);
});

test('a client that stays stuck past the stuck timeout is disconnected, with the reason logged', async (t) => {
  const { cache, client, server, errors } = await setup(t, 1500);
  cache.setSnapshot('g', bigSnapshot(0));
  const s = client.sotw();
  s.send({ node, type_url: TypeUrl.Cluster });
  await s.nth(1);
  const snapshots = Array.from({ length: 50 }, (_, g) => bigSnapshot(g + 1));
  s.call.pause();
  for (const snapshot of snapshots) {
    cache.setSnapshot('g', snapshot);
    await new Promise((r) => setImmediate(r));
  }
  const deadline = Date.now() + 10_000;
  while (server.streamCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.is(server.streamCount, 0, 'the stuck stream was closed');
  t.true(errors.some((e) => /read no response for 1500 ms/.test(e)), errors.join('\n'));
});
