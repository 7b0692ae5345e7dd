// The registry on etcd, shared by several control-plane replicas.
//
//   /tessera/instances/<service>/<id>   the registration (JSON). No lease: an instance
//                                       outlives the replica it was registered through.
//   /tessera/replicas/<replicaId>       one key per live replica, on that replica's lease.
//   /tessera/health/<service>/<id>      the latest health of an instance, written by the
//                                       replica that checks it, on that replica's lease.
//   /tessera/heartbeats/<service>/<id>  a TTL heartbeat received by any replica, for the
//                                       replica that checks the instance.
//
// Every replica watches /tessera/ and so serves the same instances and health to its
// proxies. Checks are divided by rendezvous hashing: an instance is checked by the
// live replica with the highest hash(replicaId + instance). When a replica dies its
// lease expires, its replica key and health keys vanish, and the survivors take its
// instances over; when one joins, only the instances it now wins move to it.
// A dead registrar's instances leave traffic through their checks (a TTL instance
// without heartbeats turns unhealthy); DELETE removes them for good.
import { createHash, randomUUID } from 'node:crypto';
import { Etcd3, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import type { HealthState } from './health.ts';
import { StoreError, type RegistryStore, type StoreListener, type StoredInstance } from './store.ts';

const ROOT = '/tessera/';
const INSTANCES = `${ROOT}instances/`;
const REPLICAS = `${ROOT}replicas/`;
const HEALTH = `${ROOT}health/`;
const HEARTBEATS = `${ROOT}heartbeats/`;

export interface EtcdStoreOptions {
  endpoints: string[];
  /** Seconds a dead replica keeps its checks before others take over. */
  leaseTtlSeconds?: number;
  replicaId?: string;
  log?: (line: string) => void;
}

export class EtcdStore implements RegistryStore {
  readonly replicaId: string;
  private readonly client: Etcd3;
  private lease?: Lease;
  private watcher?: Watcher;
  private listener?: StoreListener;
  private readonly replicas = new Set<string>();
  private closed = false;

  constructor(private readonly options: EtcdStoreOptions) {
    this.replicaId = options.replicaId ?? randomUUID();
    this.client = new Etcd3({ hosts: options.endpoints, dialTimeout: 3000 });
  }

  async start(listener: StoreListener): Promise<void> {
    this.listener = listener;
    try {
      this.lease = this.client.lease(this.options.leaseTtlSeconds ?? 10);
      this.lease.on('lost', (err) => {
        if (this.closed) return;
        this.options.log?.(`etcd: lease lost (${err.message}); re-announcing this replica`);
        void this.announce();
      });
      this.watcher = await this.client.watch().prefix(ROOT).create();
      this.watcher.on('put', (kv) => this.onKey(kv, false));
      this.watcher.on('delete', (kv) => this.onKey(kv, true));
      this.watcher.on('error', (err) => this.options.log?.(`etcd watch: ${err.message}`));
      await this.lease.put(`${REPLICAS}${this.replicaId}`).value(new Date().toISOString());
      const all = await this.client.getAll().prefix(ROOT).exec();
      for (const kv of all.kvs) this.onKey(kv, false, true);
      this.replicas.add(this.replicaId);
      listener.rebalance?.();
    } catch (err) {
      throw new StoreError(`cannot use etcd at ${this.options.endpoints.join(',')}: ${(err as Error).message}`);
    }
  }

  private async announce(): Promise<void> {
    this.lease = this.client.lease(this.options.leaseTtlSeconds ?? 10);
    await this.lease.put(`${REPLICAS}${this.replicaId}`).value(new Date().toISOString());
  }

  private onKey(kv: IKeyValue, deleted: boolean, initial = false): void {
    const key = kv.key.toString();
    const listener = this.listener!;
    if (key.startsWith(REPLICAS)) {
      const id = key.slice(REPLICAS.length);
      const had = this.replicas.has(id);
      if (deleted) this.replicas.delete(id);
      else this.replicas.add(id);
      if (!initial && had === deleted) listener.rebalance?.();
      return;
    }
    const [service, id] = splitInstance(key);
    if (!service || !id) return;
    if (key.startsWith(INSTANCES)) {
      if (deleted) listener.delete(service, id);
      else listener.put(JSON.parse(kv.value.toString()) as StoredInstance);
    } else if (key.startsWith(HEALTH)) {
      listener.health?.(service, id, deleted ? undefined : (JSON.parse(kv.value.toString()) as HealthState));
    } else if (key.startsWith(HEARTBEATS) && !deleted && !initial) {
      listener.heartbeat?.(service, id);
    }
  }

  async put(instance: StoredInstance): Promise<void> {
    await this.client.put(`${INSTANCES}${instance.service}/${instance.id}`).value(JSON.stringify(instance));
  }

  async delete(service: string, id: string): Promise<void> {
    await this.client.delete().key(`${INSTANCES}${service}/${id}`);
    await this.client.delete().key(`${HEALTH}${service}/${id}`);
  }

  owns(service: string, id: string): boolean {
    return ownerOf(`${service}/${id}`, [...this.replicas]) === this.replicaId;
  }

  async shareHealth(service: string, id: string, state: HealthState): Promise<void> {
    await this.lease?.put(`${HEALTH}${service}/${id}`).value(JSON.stringify(state));
  }

  async heartbeat(service: string, id: string): Promise<void> {
    if (this.owns(service, id)) this.listener?.heartbeat?.(service, id);
    else await this.client.put(`${HEARTBEATS}${service}/${id}`).value(`${this.replicaId} ${Date.now()}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.cancel().catch(() => {});
    // Leaving on purpose: give the checks to the others now, not after the lease TTL.
    await this.lease?.revoke().catch(() => {});
    this.client.close();
  }
}

function splitInstance(key: string): [string?, string?] {
  const rest = key.split('/').slice(3);
  return rest.length === 2 ? [rest[0], rest[1]] : [];
}

/** Rendezvous (highest random weight) hashing: stable when replicas come and go. */
export function ownerOf(instance: string, replicas: string[]): string | undefined {
  let best: string | undefined;
  let bestScore = '';
  for (const r of replicas) {
    const score = createHash('sha256').update(`${r}\0${instance}`).digest('hex');
    if (score > bestScore) {
      bestScore = score;
      best = r;
    }
  }
  return best;
}
