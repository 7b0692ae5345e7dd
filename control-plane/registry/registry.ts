// Registered instances and their health. Every mutation and every health
// transition emits 'change' at once; the reconciler coalesces.
import { EventEmitter } from 'node:events';
import type { Endpoint } from '../model/types.ts';
import { HealthChecker, type HealthState } from './health.ts';
import { checkInstanceId, checkServiceName, type InstanceSpec } from './spec.ts';
import { MemoryStore, type RegistryStore, type StoredInstance } from './store.ts';

interface Instance {
  stored: StoredInstance;
  checker?: HealthChecker;
}

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

export class Registry extends EventEmitter<{ change: [] }> {
  private readonly instances = new Map<string, Instance>();

  constructor(private readonly store: RegistryStore = new MemoryStore()) {
    super();
  }

  /** Loads what the store kept and starts its checks. */
  async start(): Promise<void> {
    for (const stored of await this.store.load()) this.activate(stored);
    if (this.instances.size > 0) this.emit('change');
  }

  async register(service: string, id: string, spec: InstanceSpec): Promise<{ created: boolean }> {
    checkServiceName(service);
    checkInstanceId(id);
    const stored: StoredInstance = { service, id, spec, registeredAt: new Date().toISOString() };
    await this.store.put(stored);
    const created = !this.instances.has(key(service, id));
    this.instances.get(key(service, id))?.checker?.stop();
    this.activate(stored);
    this.emit('change');
    return { created };
  }

  async deregister(service: string, id: string): Promise<boolean> {
    const instance = this.instances.get(key(service, id));
    if (!instance) return false;
    await this.store.delete(service, id);
    instance.checker?.stop();
    this.instances.delete(key(service, id));
    this.emit('change');
    return true;
  }

  /** Passes a TTL check. Returns undefined when there is no such instance. */
  heartbeat(service: string, id: string): 'ok' | 'not-ttl' | undefined {
    const instance = this.instances.get(key(service, id));
    if (!instance) return undefined;
    if (instance.stored.spec.check?.kind !== 'ttl') return 'not-ttl';
    instance.checker!.heartbeat();
    return 'ok';
  }

  private activate(stored: StoredInstance): void {
    const instance: Instance = { stored };
    const check = stored.spec.check;
    if (check) {
      instance.checker = new HealthChecker(check, stored.spec, () => this.emit('change'));
      instance.checker.start();
    }
    this.instances.set(key(stored.service, stored.id), instance);
  }

  /** Every registered instance as model endpoints (namespace default), healthy or not. */
  endpoints(): Endpoint[] {
    return [...this.instances.values()].map(({ stored, checker }) => ({
      id: stored.id,
      service: stored.service,
      namespace: 'default',
      address: stored.spec.address,
      port: stored.spec.port,
      labels: stored.spec.labels,
      zone: stored.spec.zone,
      health: healthOf(checker?.state),
      source: 'registry' as const,
    }));
  }

  view(service: string): InstanceView[] {
    return [...this.instances.values()]
      .filter((i) => i.stored.service === service)
      .map(({ stored, checker }) => ({
        id: stored.id,
        address: stored.spec.address,
        port: stored.spec.port,
        labels: stored.spec.labels,
        zone: stored.spec.zone,
        source: 'registry' as const,
        health: healthOf(checker?.state),
        lastCheck: checker?.state.lastCheck,
        lastError: checker?.state.lastError,
        check: stored.spec.check?.kind,
      }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  services(): string[] {
    return [...new Set([...this.instances.values()].map((i) => i.stored.service))].sort();
  }

  async close(): Promise<void> {
    for (const i of this.instances.values()) i.checker?.stop();
    await this.store.close();
  }
}

const key = (service: string, id: string) => `${service}/${id}`;

/** No check: trusted as registered. */
function healthOf(state: HealthState | undefined): InstanceView['health'] {
  return state ? state.health : 'healthy';
}
