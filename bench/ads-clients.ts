// Simulated Envoy-like ADS clients, run in a child process of the benchmark so
// their CPU is not counted as the control plane's. Each client subscribes like
// Envoy: CDS and LDS wildcard, then EDS for every cluster and RDS for every
// route name it learns, and ACKs every response.
import * as grpc from '@grpc/grpc-js';
import { grpcPackageDefinition } from '../protos/loader.ts';
import { benchNode, wants } from './simulated-envoy.ts';
import { TypeUrl } from '../control-plane/xds/resources/type-urls.ts';

const [countArg, mode, port, servicesArg] = process.argv.slice(2);
const count = Number(countArg);
const services = Number(servicesArg);
const definition = grpc.loadPackageDefinition(grpcPackageDefinition()) as any;
const Ads = definition.envoy.service.discovery.v3.AggregatedDiscoveryService as grpc.ServiceClientConstructor;

function sotwClient(client: grpc.Client, i: number) {
  const call = (client as any).StreamAggregatedResources() as grpc.ClientDuplexStream<any, any>;
  const names: Record<string, string[]> = {};
  call.on('data', (r: any) => {
    const resources = r.resources ?? [];
    call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names[r.type_url] ?? [] });
    const next = wants(r.type_url, resources);
    if (r.type_url === TypeUrl.Cluster || r.type_url === TypeUrl.Listener) {
      const typeUrl = r.type_url === TypeUrl.Cluster ? TypeUrl.ClusterLoadAssignment : TypeUrl.RouteConfiguration;
      const wanted = [...new Set(next.map((n) => n.name))].sort();
      if (wanted.join() !== (names[typeUrl] ?? []).join()) {
        names[typeUrl] = wanted;
        call.write({ type_url: typeUrl, resource_names: wanted });
      }
    }
  });
  call.on('error', () => {});
  call.write({ node: benchNode(i, services), type_url: TypeUrl.Cluster });
  call.write({ type_url: TypeUrl.Listener });
}

function deltaClient(client: grpc.Client, i: number) {
  const call = (client as any).DeltaAggregatedResources() as grpc.ClientDuplexStream<any, any>;
  const known: Record<string, Set<string>> = {};
  call.on('data', (r: any) => {
    call.write({ type_url: r.type_url, response_nonce: r.nonce });
    if (r.type_url === TypeUrl.Cluster || r.type_url === TypeUrl.Listener) {
      const typeUrl = r.type_url === TypeUrl.Cluster ? TypeUrl.ClusterLoadAssignment : TypeUrl.RouteConfiguration;
      const set = (known[typeUrl] ??= new Set());
      const fresh = wants(r.type_url, (r.resources ?? []).map((x: any) => x.resource))
        .map((n) => n.name)
        .filter((n) => !set.has(n));
      for (const n of fresh) set.add(n);
      if (fresh.length) call.write({ type_url: typeUrl, resource_names_subscribe: fresh });
    }
  });
  call.on('error', () => {});
  call.write({ node: benchNode(i, services), type_url: TypeUrl.Cluster });
  call.write({ type_url: TypeUrl.Listener });
}

// Many clients per channel would share one HTTP/2 connection; Envoys each have their own.
for (let i = 0; i < count; i++) {
  const client = new Ads(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 << 20 });
  if (mode === 'delta') deltaClient(client, i);
  else sotwClient(client, i);
}
process.send?.({ started: count });
