// Behaviour of the translator: what proxies can accept, and the choices the data
// plane contract (DESIGN.md) makes visible.
import { createRequire } from 'node:module';
import test from 'ava';
import type { ProxyContext } from '../../control-plane/model/types.ts';
import { translate, type ResourceSet, type TranslateInput } from '../../control-plane/translate/index.ts';
import { duration } from '../../control-plane/translate/duration.ts';
import { outboundClusterName } from '../../control-plane/translate/names.ts';
import { Snapshot } from '../../control-plane/xds/cache/snapshot.ts';
import { encodeAny } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';
import { goldenCases, withDefaults } from '../golden/cases.ts';

type Obj = Record<string, any>;

const sidecar: ProxyContext = { kind: 'sidecar', namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 } };
const proxyless: ProxyContext = { kind: 'proxyless' };

function input(raw: Obj): TranslateInput {
  return withDefaults({ proxy: sidecar, ...raw });
}

function resources(set: ResourceSet, typeUrl: keyof ResourceSet): Obj[] {
  return (set[typeUrl] ?? []).map((r) => r.resource);
}

function find(set: ResourceSet, typeUrl: keyof ResourceSet, name: string): Obj {
  const found = (set[typeUrl] ?? []).find((r) => r.name === name);
  if (!found) throw new Error(`${name} not in output`);
  return found.resource;
}

function virtualHost(set: ResourceSet, name: string): Obj {
  const vhosts = find(set, TypeUrl.RouteConfiguration, 'outbound_http').virtual_hosts as Obj[];
  const vh = vhosts.find((v) => v.name === name);
  if (!vh) throw new Error(`virtual host ${name} not in outbound_http`);
  return vh;
}

/** Every golden input, for both kinds of proxy. */
function everyInput(): [string, TranslateInput][] {
  return goldenCases().flatMap((c) => [
    [`${c.name} (${c.input.proxy.kind})`, c.input] as [string, TranslateInput],
    [`${c.name} (as ${c.input.proxy.kind === 'proxyless' ? 'sidecar' : 'proxyless'})`, { ...c.input, proxy: c.input.proxy.kind === 'proxyless' ? sidecar : proxyless }] as [
      string,
      TranslateInput,
    ],
  ]);
}

test('every resource the translator emits encodes without unknown fields', (t) => {
  for (const [name, i] of everyInput()) {
    const set = translate(i);
    for (const [typeUrl, list] of Object.entries(set)) {
      for (const r of list ?? []) t.notThrows(() => encodeAny(typeUrl, r.resource), `${name}: ${r.name}`);
    }
  }
});

test('every output is a consistent snapshot: each EDS and RDS name it references is in it', (t) => {
  for (const [name, i] of everyInput()) t.notThrows(() => Snapshot.fromResources(translate(i)), name);
});

test('an empty model still gives a sidecar its listener and an empty route table', (t) => {
  const set = translate(input({}));
  t.deepEqual(
    (set[TypeUrl.Listener] ?? []).map((l) => l.name),
    ['outbound_http'],
  );
  t.deepEqual(find(set, TypeUrl.RouteConfiguration, 'outbound_http').virtual_hosts, []);
  t.deepEqual(translate(input({ proxy: proxyless }))[TypeUrl.Listener], []);
});

test('every resource served to a proxyless client passes grpc-js-xds validation', (t) => {
  const require = createRequire(import.meta.url);
  require('@grpc/grpc-js-xds').register();
  const dir = '@grpc/grpc-js-xds/build/src/xds-resource-type/';
  const validators: Record<string, { decode(ctx: unknown, any: unknown): { error?: string } }> = {
    [TypeUrl.Cluster]: require(`${dir}cluster-resource-type.js`).ClusterResourceType.get(),
    [TypeUrl.ClusterLoadAssignment]: require(`${dir}endpoint-resource-type.js`).EndpointResourceType.get(),
    [TypeUrl.Listener]: require(`${dir}listener-resource-type.js`).ListenerResourceType.get(),
    [TypeUrl.RouteConfiguration]: require(`${dir}route-config-resource-type.js`).RouteConfigurationResourceType.get(),
  };
  for (const c of goldenCases()) {
    const set = translate({ ...c.input, proxy: proxyless });
    for (const [typeUrl, list] of Object.entries(set)) {
      for (const r of list ?? []) {
        const result = validators[typeUrl].decode({ server: {}, bootstrap: { certificateProviders: {} } }, encodeAny(typeUrl, r.resource));
        t.is(result.error, undefined, `${c.name}: ${r.name}`);
      }
    }
  }
});

test('each list of resources is sorted by name', (t) => {
  for (const [name, i] of everyInput()) {
    for (const list of Object.values(translate(i))) {
      const names = (list ?? []).map((r) => r.name);
      t.deepEqual(names, [...names].sort(), name);
    }
  }
});

test('domains are unique across virtual hosts, even with one name in two namespaces', (t) => {
  const set = translate(
    input({
      model: {
        services: [
          { name: 'api', ports: [{ port: 80 }, { port: 8080 }, { port: 9090, appProtocol: 'grpc' }] },
          { name: 'api', namespace: 'other', ports: [{ port: 80 }] },
          { name: 'api.other', ports: [{ port: 80 }] },
        ],
      },
    }),
  );
  const vhosts = find(set, TypeUrl.RouteConfiguration, 'outbound_http').virtual_hosts as Obj[];
  const domains = vhosts.flatMap((v) => v.domains as string[]);
  t.is(new Set(domains).size, domains.length);
  t.true(virtualHost(set, 'api.default:80').domains.includes('api'));
  t.deepEqual(virtualHost(set, 'api.default:8080').domains, [
    'api:8080',
    'api.default:8080',
    'api.default.svc:8080',
    'api.default.svc.cluster.local:8080',
  ]);
  t.false(virtualHost(set, 'api.other:80').domains.includes('api'), 'short names only for the sidecar namespace');
});

test('only healthy endpoints are in the load assignment: unhealthy and not-yet-checked ones are left out', (t) => {
  const set = translate(
    input({
      model: { services: [{ name: 'web', ports: [{ port: 80 }] }] },
      endpoints: [
        { id: 'a', service: 'web', address: '10.0.0.1', port: 80, health: 'healthy' },
        { id: 'b', service: 'web', address: '10.0.0.2', port: 80, health: 'unhealthy' },
        { id: 'c', service: 'web', address: '10.0.0.3', port: 80, health: 'unknown' },
      ],
    }),
  );
  const cla = find(set, TypeUrl.ClusterLoadAssignment, outboundClusterName('web', 'default', 80));
  const lb = (cla.endpoints as Obj[]).flatMap((l) => l.lb_endpoints as Obj[]);
  t.deepEqual(
    lb.map((e) => [e.endpoint.address.socket_address.address, e.health_status]),
    [['10.0.0.1', 'HEALTHY']],
  );
});

test('every locality carries a load balancing weight, as grpc-js-xds requires', (t) => {
  for (const [name, i] of everyInput()) {
    for (const cla of resources(translate(i), TypeUrl.ClusterLoadAssignment)) {
      for (const locality of cla.endpoints as Obj[]) t.deepEqual(locality.load_balancing_weight, { value: 1 }, name);
    }
  }
});

const retryModel = (routeRetry?: Obj): { model: Obj } => ({
  model: {
    services: [{ name: 'reviews', ports: [{ port: 9080 }] }],
    policies: [
      {
        name: 'p',
        targets: [{ service: 'reviews' }],
        timeoutMs: 3000,
        retry: { attempts: 2, codes: [503], retryOn: ['connect-failure'], perTryTimeoutMs: 500 },
      },
    ],
    routes: [{ name: 'r', parents: [{ service: 'reviews' }], rules: [{ backends: [{ service: 'reviews' }], ...(routeRetry ? { retry: routeRetry } : {}) }] }],
  },
});

test('route-level retry wins over TrafficPolicy, field by field', (t) => {
  const route = virtualHost(translate(input(retryModel({ attempts: 5, codes: [502] }))), 'reviews.default:9080').routes[0];
  t.is(route.route.retry_policy.num_retries.value, 5);
  t.deepEqual(route.route.retry_policy.retriable_status_codes, [502]);
  t.is(route.route.retry_policy.retry_on, 'connect-failure,retriable-status-codes', "retryOn the route does not name comes from the policy");
  t.deepEqual(route.route.retry_policy.per_try_timeout, duration(500));
  t.deepEqual(route.route.timeout, duration(3000), 'the policy timeout applies when the route has none');
});

test('a route with zero retry attempts turns the policy retry off', (t) => {
  const route = virtualHost(translate(input(retryModel({ attempts: 0 }))), 'reviews.default:9080').routes[0];
  t.is(route.route.retry_policy?.retry_on, undefined);
});

test('a route retry without conditions retries connection failures and resets too', (t) => {
  const set = translate(
    input({
      model: {
        services: [{ name: 'flaky', ports: [{ port: 80 }] }],
        routes: [{ name: 'f', parents: [{ service: 'flaky' }], rules: [{ backends: [{ service: 'flaky' }], retry: { attempts: 3, codes: [503] } }] }],
      },
    }),
  );
  const policy = virtualHost(set, 'flaky.default:80').routes[0].route.retry_policy;
  t.is(policy.retry_on, 'connect-failure,refused-stream,reset,retriable-status-codes');
  t.is(policy.retry_host_predicate[0].name, 'envoy.retry_host_predicates.previous_hosts');
});

test('a rule that matches everything replaces the default route; otherwise one is appended', (t) => {
  const set = translate(input({ model: retryModel().model }));
  const routes = virtualHost(set, 'reviews.default:9080').routes as Obj[];
  t.deepEqual(
    routes.map((r) => r.name),
    ['default/r/0/0'],
  );
  const withPath = retryModel();
  withPath.model.routes[0].rules[0].matches = [{ path: { type: 'PathPrefix', value: '/api' } }];
  const routes2 = virtualHost(translate(input(withPath)), 'reviews.default:9080').routes as Obj[];
  t.deepEqual(
    routes2.map((r) => [r.name, r.match]),
    [
      ['default/r/0/0', { path_separated_prefix: '/api' }],
      ['default', { prefix: '/' }],
    ],
  );
});

test('a backend the model does not know gets a 500 from Envoy and no route for gRPC', (t) => {
  const raw = {
    model: {
      services: [{ name: 'web', ports: [{ port: 80 }] }],
      routes: [{ name: 'w', parents: [{ service: 'web' }], rules: [{ matches: [{ path: { type: 'Exact', value: '/x' } }], backends: [{ service: 'ghost' }] }] }],
    },
  };
  const route = virtualHost(translate(input(raw)), 'web.default:80').routes[0];
  t.deepEqual(route.direct_response, { status: 500 });
  const grpc = find(translate(input({ ...raw, proxy: proxyless })), TypeUrl.RouteConfiguration, 'web.default:80');
  t.deepEqual(
    grpc.virtual_hosts[0].routes.map((r: Obj) => r.name),
    ['default'],
  );
});

test('proxyless clients get X and X:PORT listeners, the bare name from the default namespace', (t) => {
  const set = translate(
    input({
      proxy: proxyless,
      model: {
        services: [
          { name: 'echo', namespace: 'alpha', ports: [{ port: 7000, appProtocol: 'grpc' }] },
          { name: 'echo', ports: [{ port: 50051, appProtocol: 'grpc' }, { port: 50052, appProtocol: 'grpc' }] },
          { name: 'db', ports: [{ port: 5432, appProtocol: 'tcp' }] },
        ],
      },
    }),
  );
  const listeners = Object.fromEntries(
    (set[TypeUrl.Listener] ?? []).map((l) => [l.name, (l.resource as Obj).api_listener.api_listener.rds.route_config_name]),
  );
  t.deepEqual(listeners, {
    echo: 'echo.default:50051',
    'echo:50051': 'echo.default:50051',
    'echo:50052': 'echo.default:50052',
    'echo:7000': 'echo.alpha:7000',
  });
});

test('a path prefix matches whole segments, for Envoy and for gRPC', (t) => {
  const raw = {
    model: {
      services: [{ name: 'web', ports: [{ port: 80 }] }],
      routes: [{ name: 'w', parents: [{ service: 'web' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/api/' } }] }] }],
    },
  };
  t.deepEqual(virtualHost(translate(input(raw)), 'web.default:80').routes[0].match, { path_separated_prefix: '/api' });
  const grpc = find(translate(input({ ...raw, proxy: proxyless })), TypeUrl.RouteConfiguration, 'web.default:80');
  t.deepEqual(
    grpc.virtual_hosts[0].routes.slice(0, 2).map((r: Obj) => r.match),
    [{ path: '/api' }, { prefix: '/api/' }],
  );
});

test('the outbound listener accepts proxy-form requests (absolute URLs)', (t) => {
  const hcm = find(translate(input({})), TypeUrl.Listener, 'outbound_http').filter_chains[0].filters[0].typed_config;
  t.deepEqual(hcm.http_protocol_options, { allow_absolute_url: { value: true } });
  t.is(hcm.http_filters.at(-1).name, 'envoy.filters.http.router');
});

test('the inbound cluster speaks HTTP/2 to a gRPC application', (t) => {
  const set = translate(
    input({
      model: { services: [{ name: 'echo', ports: [{ port: 50051, targetPort: 9000, appProtocol: 'grpc' }] }] },
      proxy: { ...sidecar, service: 'echo', inbound: { address: '0.0.0.0', port: 9000, appPort: 19000, appAddress: '127.0.0.1' } },
    }),
  );
  const cluster = find(set, TypeUrl.Cluster, 'inbound|9000');
  t.is(cluster.type, 'STATIC');
  t.truthy(cluster.typed_extension_protocol_options);
  t.is(find(set, TypeUrl.Listener, 'inbound_9000').address.socket_address.port_value, 9000);
});

test('a proxy that knows its zone gets its zone at priority 0 and the others at 1, unless its zone has no instance', (t) => {
  const endpoints = [
    { id: 'a', service: 'web', address: '10.0.0.1', port: 80, zone: 'z1', health: 'healthy' },
    { id: 'b', service: 'web', address: '10.0.0.2', port: 80, zone: 'z2', health: 'healthy' },
  ];
  const priorities = (zone: string | undefined, eps: Obj[]) => {
    const set = translate(input({ model: { services: [{ name: 'web', ports: [{ port: 80 }] }] }, endpoints: eps, proxy: { ...sidecar, zone } }));
    const cla = find(set, TypeUrl.ClusterLoadAssignment, outboundClusterName('web', 'default', 80));
    return (cla.endpoints as Obj[]).map((l) => [l.locality.zone, l.priority ?? 0]);
  };
  t.deepEqual(priorities('z2', endpoints), [['z1', 1], ['z2', 0]]);
  t.deepEqual(priorities(undefined, endpoints), [['z1', 0], ['z2', 0]]);
  t.deepEqual(priorities('z3', endpoints), [['z1', 0], ['z2', 0]], 'no gap: nothing local, everything at 0');
  t.deepEqual(priorities('z2', [endpoints[0], { ...endpoints[1], health: 'unhealthy' }]), [['z1', 0]], 'the local zone failed: the rest move up');
});

test('capture mode: the outbound listener becomes the capture listener, an inbound capture listener and a passthrough cluster appear, and their filters survive encoding', async (t) => {
  const { decodeAny } = await import('../../control-plane/xds/resources/codec.ts');
  const capture: ProxyContext = { ...sidecar, capture: { inboundPort: 15006 } } as ProxyContext;
  const model = { model: { services: [{ name: 'b', ports: [{ name: 'http', port: 80 }] }] }, endpoints: [{ service: 'b', address: '10.0.0.2', port: 80 }] };
  const set = translate(input({ ...model, proxy: capture }));
  t.deepEqual(resources(set, TypeUrl.Listener).map((l) => l.name), ['inbound_capture', 'outbound_capture']);
  t.is(find(set, TypeUrl.Cluster, 'passthrough').type, 'ORIGINAL_DST');
  t.deepEqual(virtualHost(set, 'passthrough').domains, ['*'], 'captured HTTP to a non-mesh host passes through');
  t.true(virtualHost(set, 'b.default:80').domains.includes('b'), 'mesh hosts still route by Host');
  for (const name of ['outbound_capture', 'inbound_capture']) {
    const decoded = decodeAny(encodeAny(TypeUrl.Listener, find(set, TypeUrl.Listener, name))) as Obj;
    t.deepEqual(decoded.listener_filters.map((f: Obj) => f.typed_config['@type'] ?? f.typed_config.type_url), [
      'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
      'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
    ], `${name}: listener filters keep their types on the wire`);
    t.truthy(decoded.default_filter_chain.filters[0].typed_config, `${name}: the passthrough chain keeps its tcp_proxy`);
  }
  const plain = translate(input(model));
  t.deepEqual(resources(plain, TypeUrl.Listener).map((l) => l.name), ['outbound_http']);
  t.throws(() => virtualHost(plain, 'passthrough'), undefined, 'without capture nothing passes through');
});

test('the comparator cluster originates mTLS with the SDS certificate and checks the comparator\'s SPIFFE ID only when the sidecar has a certificate', (t) => {
  const raw = goldenCases().find((c) => c.name === '12-parallel-run-mtls')!.input;
  const socket = (sds: boolean) => find(translate({ ...raw, proxy: { ...raw.proxy, sds } as ProxyContext }), TypeUrl.Cluster, 'tessera_comparator').transport_socket as Obj | undefined;
  const tls = socket(true)!;
  t.is(tls.name, 'envoy.transport_sockets.tls');
  const common = tls.typed_config.common_tls_context as Obj;
  t.deepEqual(common.tls_certificate_sds_secret_configs.map((s: Obj) => s.name), ['default']);
  t.is(common.combined_validation_context.validation_context_sds_secret_config.name, 'ROOTCA');
  t.deepEqual(common.combined_validation_context.default_validation_context.match_typed_subject_alt_names, [
    { san_type: 'URI', matcher: { exact: 'spiffe://example.org/ns/tessera-system/sa/tessera-comparator' } },
  ]);
  t.is(socket(false), undefined, 'no certificate: plaintext, as before');
});
