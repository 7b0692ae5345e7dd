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
//
// Losing etcd: the replica keeps serving what it last knew (instances, and health
// from its own checks and the last reports of others), says why it is not ready,
// refuses registry writes with 503 instead of waiting, and retries every second.
// When etcd answers again it takes a new lease if the old one ran out, announces
// itself, re-shares the health it owns and reads the whole prefix again (the watch
// may have missed events), so every replica converges without a restart.
import { createHash, randomUUID } from 'node:crypto';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import { Etcd3, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import type { HealthState } from './health.ts';
import { StoreError, StoreUnavailableError, type RegistryStore, type StoreListener, type StoreStatus, type StoredInstance } from './store.ts';

const ROOT = '/tessera/';
const INSTANCES = `${ROOT}instances/`;
const REPLICAS = `${ROOT}replicas/`;
const HEALTH = `${ROOT}health/`;
const HEARTBEATS = `${ROOT}heartbeats/`;
/** Controllers' state (Canary phase and step): `/tessera/state/<kind>/<key>`. */
const STATE = `${ROOT}state/`;

export interface EtcdStoreOptions {
  endpoints: string[];
  /** Seconds a dead replica keeps its checks before others take over. */
  leaseTtlSeconds?: number;
  replicaId?: string;
  log?: (line: string) => void;
  /** How often an unreachable etcd is tried again. */
  retryMs?: number;
  /** A single etcd call that takes longer counts as etcd being unreachable. */
  callTimeoutMs?: number;
}

export class EtcdStore implements RegistryStore {
  readonly replicaId: string;
  private readonly client: Etcd3;
  private lease?: Lease;
  private watcher?: Watcher;
  private listener?: StoreListener;
  private readonly replicas = new Set<string>();
  /** Instance and health keys seen, to notice deletions missed while disconnected. */
  private readonly known = new Set<string>();
  /** Health this replica shares (it owns those checks), re-shared on a new lease. */
  private readonly owned = new Map<string, HealthState>();
  private closed = false;
  private trouble?: { since: string; reason: string };
  private recovering?: Promise<void>;
  private retryTimer?: NodeJS.Timeout;

  constructor(private readonly options: EtcdStoreOptions) {
    this.replicaId = options.replicaId ?? randomUUID();
    this.client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: 3000,
      // The default watch backoff grows to 30 s: after a long outage the watch
      // would come back long after etcd did.
      // (etcd3 types this as a backoff but calls .next() on it first, as on its own default, a factory.)
      faultHandling: { watchBackoff: new ExponentialBackoff({ initialDelay: 200, maxDelay: 2000 }) as unknown as IBackoff<unknown> },
    });
  }

  private get where(): string {
    return `etcd at ${this.options.endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}`;
  }

  async start(listener: StoreListener): Promise<void> {
    this.listener = listener;
    try {
      this.watcher = await this.timed(this.client.watch().prefix(ROOT).create());
      this.watcher.on('put', (kv) => this.onKey(kv, false));
      this.watcher.on('delete', (kv) => this.onKey(kv, true));
      this.watcher.on('disconnected', (err: Error) => this.lost(`watch disconnected: ${err.message}`));
      this.watcher.on('connected', () => {
        // Reconnected by the library: read everything again, events may be missing.
        if (this.trouble) void this.recover();
      });
      this.watcher.on('error', (err) => this.options.log?.(`etcd watch: ${err.message}`));
      await this.announce();
      await this.resync(true);
    } catch (err) {
      await this.close();
      throw new StoreError(`cannot use ${this.where}: ${(err as Error).message}`);
    }
  }

  status(): StoreStatus {
    return this.trouble ? { ok: false, reason: `${this.where} unreachable since ${this.trouble.since}: ${this.trouble.reason}` } : { ok: true };
  }

  /** A call that hangs is as good as a failed one. */
  private timed<T>(promise: Promise<T>): Promise<T> {
    const ms = this.options.callTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Takes a lease and puts this replica's key on it. */
  private async announce(): Promise<void> {
    const lease = this.client.lease(this.options.leaseTtlSeconds ?? 10, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      if (this.closed || lease !== this.lease) return;
      // A lease can run out with etcd up (a stalled event loop misses keepalives):
      // take a new one at once; only if etcd does not answer is it trouble.
      this.options.log?.(`etcd: lease lost (${err.message}); taking a new one`);
      void this.recover();
    });
    // Errors reach us through the awaited put and the 'lost' event; the lease's own
    // grant promise must not become an unhandled rejection.
    lease.grant().catch(() => {});
    this.lease = lease;
    await this.timed(lease.put(`${REPLICAS}${this.replicaId}`).value(new Date().toISOString()).exec());
  }

  /** Reads the whole prefix and tells the listener what changed since it last knew. */
  private async resync(initial: boolean): Promise<void> {
    const all = await this.timed(this.client.getAll().prefix(ROOT).exec());
    const present = new Set<string>();
    const replicasBefore = [...this.replicas].sort().join(',');
    this.replicas.clear();
    this.replicas.add(this.replicaId);
    for (const kv of all.kvs) {
      present.add(kv.key.toString());
      this.onKey(kv, false, true);
    }
    for (const key of [...this.known]) {
      if (!present.has(key)) this.onKey({ key: Buffer.from(key), value: Buffer.alloc(0) } as IKeyValue, true, true);
    }
    if (initial || replicasBefore !== [...this.replicas].sort().join(',')) this.listener?.rebalance?.();
  }

  /** etcd stopped answering: say so, and start trying again. */
  private lost(reason: string): void {
    if (this.closed) return;
    if (!this.trouble) {
      this.trouble = { since: new Date().toISOString(), reason };
      this.options.log?.(`etcd: ${this.where} unreachable (${reason}); serving the last known instances, registry writes refused until it answers`);
    } else this.trouble.reason = reason;
    this.scheduleRecovery();
  }

  private scheduleRecovery(): void {
    if (this.closed || this.retryTimer || this.recovering) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.recover();
    }, this.options.retryMs ?? 1000);
    this.retryTimer.unref();
  }

  private recover(): Promise<void> {
    if (this.recovering || this.closed) return this.recovering ?? Promise.resolve();
    this.recovering = (async () => {
      try {
        await this.timed(this.client.get(`${REPLICAS}${this.replicaId}`).exec());
        // The old lease may have run out while etcd was away (its keys with it).
        if (!this.lease || this.lease.revoked()) await this.announce();
        else await this.timed(this.lease.put(`${REPLICAS}${this.replicaId}`).value(new Date().toISOString()).exec());
        for (const [k, state] of this.owned) {
          const [service, id] = k.split('/');
          if (!this.owns(service, id)) continue;
          await this.timed(this.lease!.put(`${HEALTH}${k}`).value(JSON.stringify(state)).exec());
        }
        await this.resync(false);
        if (this.trouble) this.options.log?.(`etcd: ${this.where} answers again (unreachable since ${this.trouble.since}); resynced`);
        this.trouble = undefined;
      } catch (err) {
        if (!this.trouble) this.lost((err as Error).message);
        else this.trouble.reason = (err as Error).message;
      } finally {
        this.recovering = undefined;
        if (this.trouble) this.scheduleRecovery();
      }
    })();
    return this.recovering;
  }

  /** Runs a write, or refuses at once while etcd is known to be away. */
  private async write(what: string, op: () => Promise<unknown>): Promise<void> {
    if (this.trouble) throw new StoreUnavailableError(`${what} not stored: ${this.status().reason}`);
    try {
      await this.timed(op());
    } catch (err) {
      this.lost((err as Error).message);
      throw new StoreUnavailableError(`${what} not stored: ${this.where} did not take it (${(err as Error).message})`);
    }
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
    if (key.startsWith(INSTANCES) || key.startsWith(HEALTH)) {
      if (deleted) this.known.delete(key);
      else this.known.add(key);
    }
    try {
      if (key.startsWith(INSTANCES)) {
        if (deleted) listener.delete(service, id);
        else listener.put(JSON.parse(kv.value.toString()) as StoredInstance);
      } else if (key.startsWith(HEALTH)) {
        listener.health?.(service, id, deleted ? undefined : (JSON.parse(kv.value.toString()) as HealthState));
      } else if (key.startsWith(HEARTBEATS) && !deleted && !initial) {
        listener.heartbeat?.(service, id);
      }
    } catch (err) {
      // Someone wrote something that is not ours under the prefix: skip the key, keep going.
      this.options.log?.(`etcd: ignoring ${key}: ${(err as Error).message}`);
    }
  }

  put(instance: StoredInstance): Promise<void> {
    return this.write(`registration of ${instance.service}/${instance.id}`, () =>
      this.client.put(`${INSTANCES}${instance.service}/${instance.id}`).value(JSON.stringify(instance)).exec(),
    );
  }

  async loadState(kind: string): Promise<Map<string, unknown>> {
    const prefix = `${STATE}${kind}/`;
    const all = await this.timed(this.client.getAll().prefix(prefix).strings());
    return new Map(Object.entries(all).map(([k, v]) => [k.slice(prefix.length), JSON.parse(v) as unknown]));
  }

  putState(kind: string, key: string, value: unknown): Promise<void> {
    const k = `${STATE}${kind}/${key}`;
    return this.write(`${kind} state ${key}`, () =>
      value === undefined ? this.client.delete().key(k).exec() : this.client.put(k).value(JSON.stringify(value)).exec(),
    );
  }

  async delete(service: string, id: string): Promise<void> {
    await this.write(`deregistration of ${service}/${id}`, async () => {
      await this.client.delete().key(`${INSTANCES}${service}/${id}`).exec();
      await this.client.delete().key(`${HEALTH}${service}/${id}`).exec();
    });
    this.owned.delete(`${service}/${id}`);
  }

  owns(service: string, id: string): boolean {
    return ownerOf(`${service}/${id}`, [...this.replicas]) === this.replicaId;
  }

  async shareHealth(service: string, id: string, state: HealthState): Promise<void> {
    // Kept even when etcd is away: re-shared as soon as it answers.
    this.owned.set(`${service}/${id}`, { ...state });
    if (this.trouble || !this.lease) return;
    await this.timed(this.lease.put(`${HEALTH}${service}/${id}`).value(JSON.stringify(state)).exec()).catch((err) => this.lost((err as Error).message));
  }

  async heartbeat(service: string, id: string): Promise<void> {
    if (this.owns(service, id)) this.listener?.heartbeat?.(service, id);
    else await this.write(`heartbeat of ${service}/${id}`, () => this.client.put(`${HEARTBEATS}${service}/${id}`).value(`${this.replicaId} ${Date.now()}`).exec());
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.watcher?.cancel().catch(() => {});
    // Leaving on purpose: give the checks to the others now, not after the lease TTL.
    if (!this.trouble) await this.timed(this.lease?.revoke() ?? Promise.resolve()).catch(() => {});
    else this.lease?.release();
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
