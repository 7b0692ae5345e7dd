// Simulated Envoy-like ADS clients for the side-by-side benchmark, run in child
// processes so their CPU is not counted as either server's. They subscribe like
// Envoy (CDS and LDS wildcard, then EDS for every cluster and RDS for every route
// name learned; SotW or delta) and ACK every response, as bench/ads-clients.ts does.
//
// Neither server tells the harness about ACKs (go-control-plane has no callback
// into it), so convergence is measured here: the parent "arms" a change with the
// address of the endpoint about to be added; each client records the wall-clock
// time (performance.timeOrigin + performance.now(), comparable across processes on
// one machine) at which it ACKed the first EDS response holding that address, and
// counts what it received from arming until the parent collects.
//
// IPC, parent -> child: {arm: {address}} | {collect: true}
//        child -> parent: {ready: n} | {armed: true} | {converged: n} | {report: {...}}
//                         | {progress: {clients, ready, streamErrors, firstError}} (every 5 s)
import * as grpc from '@grpc/grpc-js';
import { grpcPackageDefinition } from '../../protos/loader.ts';
import { benchNode, wants } from '../simulated-envoy.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';

export interface ClientReport {
  /** Wall-clock ms of each client's ACK of the change (clients that converged). */
  ackedAt: number[];
  /** Bytes of resources (Any values) received by all clients since arming. */
  resourceBytes: number;
  /** Responses received by all clients since arming, per type URL. */
  responses: Record<string, number>;
  /** Streams that ended or failed (each is reopened after a backoff). */
  streamErrors: number;
}

const [firstArg, countArg, mode, port, servicesArg] = process.argv.slice(2);
const first = Number(firstArg);
const count = Number(countArg);
const services = Number(servicesArg);
const definition = grpc.loadPackageDefinition(grpcPackageDefinition()) as any;
const Ads = definition.envoy.service.discovery.v3.AggregatedDiscoveryService as grpc.ServiceClientConstructor;
const now = () => performance.timeOrigin + performance.now();

// --- what the parent is waiting for ---
let initialized = 0;
let needle: Buffer | undefined; // SocketAddress.address (field 2) holding the new address, as encoded
let ackedAt: (number | undefined)[] = new Array(count);
let converged = 0;
let resourceBytes = 0;
let responses: Record<string, number> = {};
let streamErrors = 0;
let firstError: string | undefined;
// Ready once every client ACKed its first EDS and RDS responses: a route table
// still in flight when a change is armed would be counted as part of the change.
const hadEds = new Array<boolean>(count).fill(false);
const hadRds = new Array<boolean>(count).fill(false);

/** Called after client `i` (its slot in this process) wrote its ACK of a response. */
function acked(i: number, typeUrl: string, anys: { value: Buffer }[]) {
  if (needle) {
    responses[typeUrl] = (responses[typeUrl] ?? 0) + 1;
    for (const a of anys) resourceBytes += a.value.length;
  }
  if (!(hadEds[i] && hadRds[i])) {
    if (typeUrl === TypeUrl.ClusterLoadAssignment) hadEds[i] = true;
    if (typeUrl === TypeUrl.RouteConfiguration) hadRds[i] = true;
    if (hadEds[i] && hadRds[i] && ++initialized === count) process.send?.({ ready: count });
  }
  if (typeUrl !== TypeUrl.ClusterLoadAssignment) return;
  if (needle && ackedAt[i] === undefined && anys.some((a) => a.value.includes(needle!))) {
    ackedAt[i] = now();
    if (++converged === count) process.send?.({ converged });
  }
}

function sotwClient(client: grpc.Client, i: number, id: number, attempt = 0) {
  const call = (client as any).StreamAggregatedResources() as grpc.ClientDuplexStream<any, any>;
  const names: Record<string, string[]> = {};
  call.on('data', (r: any) => {
    const resources = r.resources ?? [];
    call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names[r.type_url] ?? [] });
    acked(i, r.type_url, resources);
    if (r.type_url === TypeUrl.Cluster || r.type_url === TypeUrl.Listener) {
      const typeUrl = r.type_url === TypeUrl.Cluster ? TypeUrl.ClusterLoadAssignment : TypeUrl.RouteConfiguration;
      const wanted = [...new Set(wants(r.type_url, resources).map((n) => n.name))].sort();
      if (wanted.join() !== (names[typeUrl] ?? []).join()) {
        names[typeUrl] = wanted;
        call.write({ type_url: typeUrl, resource_names: wanted });
      }
    }
  });
  retryOnFailure(call, attempt, () => sotwClient(client, i, id, attempt + 1));
  call.write({ node: benchNode(id, services), type_url: TypeUrl.Cluster });
  call.write({ type_url: TypeUrl.Listener });
}

function deltaClient(client: grpc.Client, i: number, id: number, attempt = 0) {
  const call = (client as any).DeltaAggregatedResources() as grpc.ClientDuplexStream<any, any>;
  const known: Record<string, Set<string>> = {};
  call.on('data', (r: any) => {
    const anys = (r.resources ?? []).map((x: any) => x.resource).filter(Boolean);
    call.write({ type_url: r.type_url, response_nonce: r.nonce });
    acked(i, r.type_url, anys);
    if (r.type_url === TypeUrl.Cluster || r.type_url === TypeUrl.Listener) {
      const typeUrl = r.type_url === TypeUrl.Cluster ? TypeUrl.ClusterLoadAssignment : TypeUrl.RouteConfiguration;
      const set = (known[typeUrl] ??= new Set());
      const fresh = wants(r.type_url, anys).map((n) => n.name).filter((n) => !set.has(n));
      for (const n of fresh) set.add(n);
      if (fresh.length) call.write({ type_url: typeUrl, resource_names_subscribe: fresh });
    }
  });
  retryOnFailure(call, attempt, () => deltaClient(client, i, id, attempt + 1));
  call.write({ node: benchNode(id, services), type_url: TypeUrl.Cluster });
  call.write({ type_url: TypeUrl.Listener });
}

/** Like Envoy, a client whose ADS stream failed (at 10,000 connections the server's
 *  accept queue overflows and connects time out) opens a new one after a jittered,
 *  growing backoff, and subscribes from scratch. */
function retryOnFailure(call: grpc.ClientDuplexStream<any, any>, attempt: number, reopen: () => void) {
  let done = false;
  const again = (err?: Error) => {
    if (done) return;
    done = true;
    streamErrors++;
    if (err && !firstError) firstError = err.message;
    const backoffMs = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random());
    setTimeout(reopen, backoffMs);
  };
  call.on('error', again);
  call.on('end', () => again());
}

/** The bytes protobuf writes for `address: "<a>"` in a SocketAddress (field 2,
 *  length-delimited): an exact match, so 10.1.0.1 does not match 10.1.0.10. */
function encodedAddress(address: string): Buffer {
  const bytes = Buffer.from(address);
  return Buffer.concat([Buffer.from([0x12, bytes.length]), bytes]);
}

process.on('message', (m: any) => {
  if (m.arm) {
    needle = encodedAddress(m.arm.address);
    ackedAt = new Array(count);
    converged = 0;
    resourceBytes = 0;
    responses = {};
    process.send?.({ armed: true });
  } else if (m.collect) {
    const report: ClientReport = { ackedAt: ackedAt.filter((x): x is number => x !== undefined), resourceBytes, responses, streamErrors };
    needle = undefined;
    process.send?.({ report });
  }
});
process.on('disconnect', () => process.exit(0));
// While connecting: how far this process got, for progress and timeout messages.
const progress = setInterval(() => process.send?.({ progress: { clients: count, ready: initialized, streamErrors, firstError } }), 5000);
progress.unref();

// One channel per client: Envoys each have their own connection.
for (let i = first; i < first + count; i++) {
  const client = new Ads(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 64 << 20,
  });
  if (mode === 'delta') deltaClient(client, i - first, i);
  else sotwClient(client, i - first, i);
}
