// Registered instances and their health. Every mutation and every health
// transition emits 'change' at once; the reconciler coalesces. With a shared
// store (etcd) instances and health come from every replica, and this replica
// runs the checks of only the instances the store says it owns.
//
// An instance may be registered by DNS name. Envoy's EDS takes IP addresses only
// (a name there is a NACK that freezes the cluster's endpoints for everyone), so the
// registry resolves names itself, as a STRICT_DNS cluster would: the endpoints are
// the name's addresses (IPv4 when it has any, else IPv6), looked up again every
// TESSERA_DNS_REFRESH_MS (30 s); a lookup that fails keeps the last addresses. A name
// that does not resolve at registration is refused (400).
import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Endpoint } from '../model/types.ts';
import { HealthChecker, type HealthState } from './health.ts';
import { checkInstanceId, checkServiceName, RegistrationError, type InstanceSpec } from './spec.ts';
import { MemoryStore, type RegistryStore, type StoreStatus, type StoredInstance } from './store.ts';

export interface InstanceView {
  id: string;
  address: string;
  port: number;
  labels: Record<string, string>;
  zone?: string;
  source: 'registry';
  health: 'healthy' | 'unhealthy' | 'unknown';
  lastCheck?: string;
  lastError?: string;
  check?: string;
  /** For an address given as a DNS name: the addresses it resolved to. */
  resolved?: string[];
  resolveError?: string;
}

/** The addresses a name stands for, as Envoy's V4_PREFERRED lookup picks them. */
export async function resolveAddress(name: string): Promise<string[]> {
  const all = await dns.promises.lookup(name, { all: true });
  const v4 = all.filter((a) => a.family === 4).map((a) => a.address);
  const chosen = v4.length > 0 ? v4 : all.map((a) => a.address);
  return [...new Set(chosen)].sort();
}

const key = (service: string, id: string) => `${service}/${id}`;

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class Registry extends EventEmitter<{ change: [] }> {
  private readonly records = new Map<string, StoredInstance>();
  private readonly checkers = new Map<string, HealthChecker>();
  /** Health reported by the replica that checks an instance we do not. */
  private readonly shared = new Map<string, HealthState>();
  /** Addresses of instances registered by DNS name. */
  private readonly resolved = new Map<string, { name: string; addresses: string[]; error?: string }>();
  private refreshTimer?: NodeJS.Timeout;
  /** What endpoints() last made of each instance (see there). */
  private readonly endpointMemo = new Map<string, { record: StoredInstance; health: InstanceView['health']; addresses: string[]; endpoints: Endpoint[] }>();

  constructor(
    private readonly store: RegistryStore = new MemoryStore(),
    private readonly options: { dnsRefreshMs?: number; resolve?: (name: string) => Promise<string[]> } = {},
  ) {
    super();
  }

  /** Where controllers keep their state across restarts: the registry's store. */
  get stateStore(): Pick<RegistryStore, 'loadState' | 'putState'> {
    return this.store;
  }

  /** The store's state, for /readyz. */
  storeStatus(): StoreStatus {
    return this.store.status?.() ?? { ok: true };
  }

  private get resolve() {
    return this.options.resolve ?? resolveAddress;
  }

  async start(): Promise<void> {
    await this.store.start({
      put: (r) => this.onPut(r),
      delete: (service, id) => this.onDelete(service, id),
      health: (service, id, state) => {
        // A report that vanished (its replica died) keeps its last value until the
        // new owner's first check: dropping it would pull the instance from traffic.
        if (this.checkers.has(key(service, id)) || !state) return;
        this.shared.set(key(service, id), state);
        this.emit('change');
      },
      heartbeat: (service, id) => this.checkers.get(key(service, id))?.heartbeat(),
      rebalance: () => this.rebalance(),
    });
    const every = this.options.dnsRefreshMs ?? Number(process.env.TESSERA_DNS_REFRESH_MS ?? 30_000);
    this.refreshTimer = setInterval(() => void this.refreshNames(), every);
    this.refreshTimer.unref();
  }

  async register(service: string, id: string, spec: InstanceSpec): Promise<{ created: boolean }> {
    checkServiceName(service);
    checkInstanceId(id);
    const created = !this.records.has(key(service, id));
    if (!net.isIP(spec.address)) {
      try {
        const addresses = await this.resolve(spec.address);
        if (addresses.length === 0) throw new Error('no addresses');
        this.resolved.set(key(service, id), { name: spec.address, addresses });
      } catch (err) {
        throw new RegistrationError(
          `address ${JSON.stringify(spec.address)} does not resolve here (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); register an IP address or a name this control plane can resolve`,
        );
      }
    }
    const stored: StoredInstance = { service, id, spec, registeredAt: new Date().toISOString() };
    await this.store.put(stored);
    this.onPut(stored);
    return { created };
  }

  async deregister(service: string, id: string): Promise<boolean> {
    if (!this.records.has(key(service, id))) return false;
    await this.store.delete(service, id);
    this.onDelete(service, id);
    return true;
  }

  /** Passes a TTL check. Returns undefined when there is no such instance. */
  async heartbeat(service: string, id: string): Promise<'ok' | 'not-ttl' | undefined> {
    const record = this.records.get(key(service, id));
    if (!record) return undefined;
    if (record.spec.check?.kind !== 'ttl') return 'not-ttl';
    await this.store.heartbeat(service, id);
    return 'ok';
  }

  private onPut(stored: StoredInstance): void {
    const k = key(stored.service, stored.id);
    const previous = this.records.get(k);
    if (previous && JSON.stringify(previous.spec) === JSON.stringify(stored.spec)) return;
    this.records.set(k, stored);
    this.checkers.get(k)?.stop();
    this.checkers.delete(k);
    if (previous) this.shared.delete(k);
    // Registered through another replica or read back at start: resolve it here too.
    if (!net.isIP(stored.spec.address) && this.resolved.get(k)?.name !== stored.spec.address) void this.resolveName(k, stored.spec.address);
    this.ensureChecker(stored);
    this.emit('change');
  }

  private async resolveName(k: string, name: string): Promise<void> {
    let addresses: string[] | undefined;
    let error: string | undefined;
    try {
      addresses = await this.resolve(name);
      if (addresses.length === 0) throw new Error('no addresses');
    } catch (err) {
      error = `${name} does not resolve: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
    const record = this.records.get(k);
    if (!record || record.spec.address !== name) return; // gone or changed meanwhile
    const before = this.resolved.get(k);
    // A failed lookup keeps the last addresses: DNS trouble must not empty a cluster.
    const kept = before?.name === name ? before.addresses : [];
    const next = { name, addresses: addresses ?? kept, error };
    this.resolved.set(k, next);
    if (before?.name !== name || JSON.stringify(before.addresses) !== JSON.stringify(next.addresses)) this.emit('change');
  }

  private async refreshNames(): Promise<void> {
    for (const [k, r] of this.records) if (!net.isIP(r.spec.address)) await this.resolveName(k, r.spec.address);
  }

  private onDelete(service: string, id: string): void {
    const k = key(service, id);
    if (!this.records.delete(k)) return;
    this.endpointMemo.delete(k);
    this.checkers.get(k)?.stop();
    this.checkers.delete(k);
    this.shared.delete(k);
    this.resolved.delete(k);
    this.emit('change');
  }

  private ensureChecker(stored: StoredInstance): void {
    const k = key(stored.service, stored.id);
    const check = stored.spec.check;
    if (!check || this.checkers.has(k) || !this.store.owns(stored.service, stored.id)) return;
    const checker = new HealthChecker(check, stored.spec, (state) => {
      this.emit('change');
      this.store.shareHealth(stored.service, stored.id, state).catch(() => {
        /* the next transition shares again; the store logs its own trouble */
      });
    });
    this.checkers.set(k, checker);
    checker.start();
  }

  /** Replicas came or went: start the checks we now own, stop the ones we lost. */
  private rebalance(): void {
    for (const [k, checker] of this.checkers) {
      const r = this.records.get(k);
      if (!r || !this.store.owns(r.service, r.id)) {
        checker.stop();
        this.checkers.delete(k);
      }
    }
    for (const r of this.records.values()) this.ensureChecker(r);
  }

  private state(k: string): HealthState | undefined {
    return this.checkers.get(k)?.state ?? this.shared.get(k);
  }

  /** No check: trusted as registered. A check nobody has run yet: unknown. */
  private health(r: StoredInstance): InstanceView['health'] {
    if (!r.spec.check) return 'healthy';
    return this.state(key(r.service, r.id))?.health ?? 'unknown';
  }

  /** The IP addresses an instance is served at: its own, or what its name resolved to. */
  private addresses(r: StoredInstance): string[] {
    if (net.isIP(r.spec.address)) return [r.spec.address];
    const entry = this.resolved.get(key(r.service, r.id));
    return entry?.name === r.spec.address ? entry.addresses : [];
  }

  /** Every registered instance as model endpoints (namespace default), healthy or not;
   *  always IP addresses (a name not resolved yet has none). An instance whose record,
   *  health and addresses are unchanged gets the same objects as last time: the
   *  reconciler tells unchanged services by identity, so a registration costs its own
   *  service, not a JSON fingerprint of every registered one. */
  endpoints(): Endpoint[] {
    const out: Endpoint[] = [];
    for (const [k, r] of this.records) {
      const addresses = this.addresses(r);
      const health = this.health(r);
      let memo = this.endpointMemo.get(k);
      if (!memo || memo.record !== r || memo.health !== health || !sameList(memo.addresses, addresses)) {
        const endpoints = addresses.map((address) => ({
          id: addresses.length === 1 ? r.id : `${r.id}@${address}`,
          service: r.service,
          namespace: 'default',
          address,
          port: r.spec.port,
          labels: r.spec.labels,
          zone: r.spec.zone,
          health,
          source: 'registry' as const,
        }));
        memo = { record: r, health, addresses, endpoints };
        this.endpointMemo.set(k, memo);
      }
      for (const e of memo.endpoints) out.push(e);
    }
    return out;
  }

  view(service: string): InstanceView[] {
    return [...this.records.values()]
      .filter((r) => r.service === service)
      .map((r) => {
        const state = this.state(key(r.service, r.id));
        return {
          id: r.id,
          address: r.spec.address,
          port: r.spec.port,
          labels: r.spec.labels,
          zone: r.spec.zone,
          source: 'registry' as const,
          health: this.health(r),
          lastCheck: state?.lastCheck,
          lastError: state?.lastError,
          check: r.spec.check?.kind,
          ...(net.isIP(r.spec.address)
            ? {}
            : { resolved: this.addresses(r), ...(this.resolved.get(key(r.service, r.id))?.error ? { resolveError: this.resolved.get(key(r.service, r.id))!.error } : {}) }),
        };
      })
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Instances whose checks this replica runs. */
  checkedHere(): string[] {
    return [...this.checkers.keys()].sort();
  }

  services(): string[] {
    return [...new Set([...this.records.values()].map((r) => r.service))].sort();
  }

  async close(): Promise<void> {
    clearInterval(this.refreshTimer);
    for (const c of this.checkers.values()) c.stop();
    this.checkers.clear();
    await this.store.close();
  }
}
