// Registered instances and their health. Every mutation and every health
// transition emits 'change' at once; the reconciler coalesces. With a shared
// store (etcd) instances and health come from every replica, and this replica
// runs the checks of only the instances the store says it owns.
import { EventEmitter } from 'node:events';
import type { Endpoint } from '../model/types.ts';
import { HealthChecker, type HealthState } from './health.ts';
import { checkInstanceId, checkServiceName, type InstanceSpec } from './spec.ts';
import { MemoryStore, type RegistryStore, type StoredInstance } from './store.ts';

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
}

const key = (service: string, id: string) => `${service}/${id}`;

export class Registry extends EventEmitter<{ change: [] }> {
  private readonly records = new Map<string, StoredInstance>();
  private readonly checkers = new Map<string, HealthChecker>();
  /** Health reported by the replica that checks an instance we do not. */
  private readonly shared = new Map<string, HealthState>();

  constructor(private readonly store: RegistryStore = new MemoryStore()) {
    super();
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
  }

  async register(service: string, id: string, spec: InstanceSpec): Promise<{ created: boolean }> {
    checkServiceName(service);
    checkInstanceId(id);
    const created = !this.records.has(key(service, id));
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
    this.ensureChecker(stored);
    this.emit('change');
  }

  private onDelete(service: string, id: string): void {
    const k = key(service, id);
    if (!this.records.delete(k)) return;
    this.checkers.get(k)?.stop();
    this.checkers.delete(k);
    this.shared.delete(k);
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

  /** Every registered instance as model endpoints (namespace default), healthy or not. */
  endpoints(): Endpoint[] {
    return [...this.records.values()].map((r) => ({
      id: r.id,
      service: r.service,
      namespace: 'default',
      address: r.spec.address,
      port: r.spec.port,
      labels: r.spec.labels,
      zone: r.spec.zone,
      health: this.health(r),
      source: 'registry' as const,
    }));
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
    for (const c of this.checkers.values()) c.stop();
    this.checkers.clear();
    await this.store.close();
  }
}
