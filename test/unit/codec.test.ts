import test from 'ava';
import { decodeAny, encodeAny } from '../../control-plane/xds/resources/codec.ts';
import { EXTENSION, TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';

test('a cluster with a nested Any survives encoding byte for byte', (t) => {
  const cluster = {
    name: 'reviews',
    type: 'EDS',
    connect_timeout: { seconds: 1 },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': EXTENSION.httpProtocolOptions,
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
  t.deepEqual(decodeAny(encodeAny(TypeUrl.Cluster, cluster)), cluster);
});

test('an unknown field is refused instead of silently dropped', (t) => {
  const err = t.throws(() => encodeAny(TypeUrl.Cluster, { name: 'x', conect_timeout: { seconds: 1 } }));
  t.regex(err!.message, /conect_timeout: no such field in Cluster/);
});

test('a misspelt enum value is refused', (t) => {
  const err = t.throws(() => encodeAny(TypeUrl.Cluster, { name: 'x', lb_policy: 'ROUND_ROBINN' }));
  t.regex(err!.message, /ROUND_ROBINN is not a LbPolicy value/);
});

test('an Any naming a type that is not loaded is refused, not encoded empty', (t) => {
  const err = t.throws(() =>
    encodeAny(TypeUrl.Listener, {
      name: 'l',
      filter_chains: [{ filters: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/not.a.Type' } }] }],
    }),
  );
  t.regex(err!.message, /not\.a\.Type is not loaded/);
});
