import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { grpcPackageDefinition } from '../../protos/loader.ts';
import { decodeSotwRequest, deltaResponse, sotwBody, withNonce } from '../../control-plane/xds/server/wire.ts';
import type { CachedResource } from '../../control-plane/xds/cache/snapshot.ts';

const ads = (grpc.loadPackageDefinition(grpcPackageDefinition()) as any).envoy.service.discovery.v3.AggregatedDiscoveryService.service;
const sotw = ads.StreamAggregatedResources as grpc.MethodDefinition<object, object>;
const delta = ads.DeltaAggregatedResources as grpc.MethodDefinition<object, object>;
const sorted = (o: object) => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));

test('a SotW request reads the same through our decoder as through proto-loader, whatever it carries', (t) => {
  const requests = [
    {},
    { version_info: 'v1', type_url: 'type.googleapis.com/x', response_nonce: '12' },
    { type_url: 't', resource_names: ['a', 'b', 'é漢字', ''] },
    { type_url: 't', resource_names: Array.from({ length: 100 }, (_, i) => `outbound|80||svc-${i}.default.svc.cluster.local${'x'.repeat(i)}`), response_nonce: '7' },
    { node: { id: 'n', cluster: 'c' }, type_url: 't', resource_names: ['a'] },
    { type_url: 't', response_nonce: '3', error_detail: { code: 3, message: 'bad' } },
  ];
  for (const request of requests) {
    const bytes = sotw.requestSerialize(request);
    t.is(sorted(decodeSotwRequest(bytes, sotw.requestDeserialize as never)), sorted(sotw.requestDeserialize(bytes)));
  }
});

test('a SotW ACK keeps the bytes of its names: equal lists, equal bytes; a request with a node is left to proto-loader', (t) => {
  const read = (r: object) => decodeSotwRequest(sotw.requestSerialize(r), sotw.requestDeserialize as never);
  const a = read({ type_url: 't', resource_names: ['a', 'b'], response_nonce: '1' });
  const b = read({ type_url: 't', resource_names: ['a', 'b'], response_nonce: '2', version_info: 'v' });
  const c = read({ type_url: 't', resource_names: ['a', 'c'], response_nonce: '2' });
  t.true(a.resourceNamesBytes!.equals(b.resourceNamesBytes!));
  t.false(a.resourceNamesBytes!.equals(c.resourceNamesBytes!));
  t.is(read({ node: { id: 'n' }, type_url: 't', resource_names: ['a'] }).resourceNamesBytes, undefined);
  t.is(read({ type_url: 't' }).resourceNamesBytes, undefined);
});

test('responses written by hand decode as the messages they stand for', (t) => {
  const resource = (name: string, size: number): CachedResource => ({
    name,
    version: `v-${name}`,
    any: { type_url: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', value: Buffer.alloc(size, 1) },
    object: {},
  });
  const resources = [resource('a', 3), resource('b'.repeat(200), 300)];
  const d: any = delta.responseDeserialize(deltaResponse('sys', 'type.googleapis.com/t', resources, ['gone', 'é'], '42').bytes);
  t.is(d.system_version_info, 'sys');
  t.is(d.nonce, '42');
  t.deepEqual(d.removed_resources, ['gone', 'é']);
  t.deepEqual(d.resources.map((r: { name: string; version: string }) => [r.name, r.version]), resources.map((r) => [r.name, r.version]));
  t.is(d.resources[1].resource.value.length, 300);
  const s: any = sotw.responseDeserialize(withNonce(sotwBody('v9', 'type.googleapis.com/t', resources), 'n'.repeat(130)).bytes);
  t.is(s.version_info, 'v9');
  t.is(s.nonce, 'n'.repeat(130));
  t.is(s.resources.length, 2);
});
