import test from 'ava';
import { grpcPackageDefinition } from '../../protos/loader.ts';
import { groupKey, proxyContextOf } from '../../control-plane/reconcile/proxy-context.ts';
import { jsonToStruct } from '../../control-plane/xds/resources/struct.ts';

const ads = (grpcPackageDefinition() as any)['envoy.service.discovery.v3.AggregatedDiscoveryService'].StreamAggregatedResources;

/** The node as the server sees it: through the same wire decoding. */
function overTheWire(metadata: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const bytes = ads.requestSerialize({ node: { id: 'n', metadata: jsonToStruct(metadata), ...extra } });
  return ads.requestDeserialize(bytes).node;
}

test('node metadata written by the bootstrap survives the wire and sets the proxy context', (t) => {
  const node = overTheWire({
    tessera: { mode: 'sidecar', service: 'reviews', namespace: 'shop', outbound: { address: '127.0.0.1', port: 25001 }, inbound: { address: '0.0.0.0', port: 9080, app_port: 8080, app_address: '127.0.0.1' } },
  });
  t.deepEqual(proxyContextOf(node), {
    kind: 'sidecar',
    service: 'reviews',
    namespace: 'shop',
    outbound: { address: '127.0.0.1', port: 25001 },
    inbound: { address: '0.0.0.0', port: 9080, appPort: 8080, appAddress: '127.0.0.1' },
  });
});

test('an Envoy without Tessera metadata is a sidecar on the default outbound port; others are proxyless', (t) => {
  t.deepEqual(proxyContextOf(overTheWire({}, { user_agent_name: 'envoy' })), {
    kind: 'sidecar', service: undefined, namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 },
  });
  t.deepEqual(proxyContextOf(overTheWire({}, { user_agent_name: 'gRPC Node Pure JS' })), { kind: 'proxyless' });
});

test('a bad port in node metadata is refused with the field named', (t) => {
  const err = t.throws(() => proxyContextOf(overTheWire({ tessera: { mode: 'sidecar', outbound: { port: 'x' } } })));
  t.regex(err!.message, /metadata\.tessera\.outbound\.port must be a port number/);
});

test('proxies with the same context share a group whatever the key order', (t) => {
  const a = groupKey({ kind: 'sidecar', namespace: 'default', outbound: { address: '127.0.0.1', port: 1 } });
  const b = groupKey({ outbound: { port: 1, address: '127.0.0.1' }, namespace: 'default', kind: 'sidecar' } as any);
  t.is(a, b);
});

test('the agent bootstrap of a capture-mode sidecar sets capture in the proxy context; a bad value is refused', async (t) => {
  const { envoyBootstrap } = await import('../../sidecar/bootstrap/bootstrap.ts');
  const bootstrap = envoyBootstrap({
    nodeId: 'a-1', service: 'a', namespace: 'mesh', xds: [{ host: '127.0.0.1', port: 18000 }], mode: 'sotw', adminPort: 15000,
    outbound: { address: '127.0.0.1', port: 15001 }, capture: { inboundPort: 15006 },
  }) as any;
  const context = proxyContextOf(overTheWire(bootstrap.node.metadata));
  t.deepEqual(context, { kind: 'sidecar', service: 'a', namespace: 'mesh', outbound: { address: '127.0.0.1', port: 15001 }, capture: { inboundPort: 15006 } });
  t.not(groupKey(context), groupKey({ ...context, capture: undefined } as any), 'capture and non-capture sidecars get different snapshots');
  const err = t.throws(() => proxyContextOf(overTheWire({ tessera: { mode: 'sidecar', capture: 'yes' } })));
  t.regex(err!.message, /metadata\.tessera\.capture must be true or false/);
});

test('node metadata that Envoy could not use, or that is not a name, is refused with the field it is in', (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ tessera: { mode: 'sidecar', outbound: { address: 'localhost', port: 15001 } } }, /outbound\.address must be an IP address/],
    [{ tessera: { mode: 'sidecar', inbound: { address: '1.2.3', port: 9080, app_port: 8080 } } }, /inbound\.address must be an IP address/],
    [{ tessera: { mode: 'sidecar', inbound: { port: 9080, app_port: 8080, app_address: 'app.local' } } }, /inbound\.app_address must be an IP address/],
    [{ tessera: { mode: 'sidecar', outbound: 'x' } }, /outbound must be an object/],
    [{ tessera: { mode: 'sidecar', service: 'a b' } }, /tessera\.service must be a name/],
    [{ tessera: { mode: 'sidecar', namespace: 'x'.repeat(300) } }, /tessera\.namespace must be a name/],
    [{ tessera: { mode: 'gateway' } }, /mode must be sidecar or proxyless/],
    [{ tessera: 'sidecar' }, /metadata\.tessera must be an object/],
  ];
  for (const [metadata, message] of bad) t.throws(() => proxyContextOf(overTheWire(metadata, { user_agent_name: 'envoy' })), { message }, JSON.stringify(metadata));
  t.notThrows(() => proxyContextOf(overTheWire({ tessera: { mode: 'sidecar', outbound: { address: '::1', port: 15001 } } })));
});

test('metadata a client adds beyond what Tessera reads does not make a new group', (t) => {
  const base = { tessera: { mode: 'sidecar', service: 'reviews' } };
  const a = groupKey(proxyContextOf(overTheWire(base)));
  const b = groupKey(proxyContextOf(overTheWire({ ...base, random: Math.random(), tessera: { ...base.tessera, junk: 'x'.repeat(1000) } })));
  t.is(a, b);
});
