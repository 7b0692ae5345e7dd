// Where registrations live between restarts: nowhere (memory) or a JSON file
// written atomically (temp file, fsync, rename, fsync the dir), so a crash
// mid-write leaves the previous file whole.
import fs from 'node:fs';
import path from 'node:path';
import type { HealthState } from './health.ts';
import type { InstanceSpec } from './spec.ts';

export interface StoredInstance {
  service: string;
  id: string;
  spec: InstanceSpec;
  registeredAt: string;
}

/** What a store tells the registry: instances appearing and going (from any
 *  replica), health seen by other replicas, heartbeats, and a change of who checks what. */
export interface StoreListener {
  put(instance: StoredInstance): void;
  delete(service: string, id: string): void;
  health?(service: string, id: string, state: HealthState | undefined): void;
  heartbeat?(service: string, id: string): void;
  rebalance?(): void;
}

export interface RegistryStore {
  /** Loads what is stored (calling listener.put for each) and keeps listening. */
  start(listener: StoreListener): Promise<void>;
  put(instance: StoredInstance): Promise<void>;
  delete(service: string, id: string): Promise<void>;
  /** Whether this control plane runs the checks of that instance. */
  owns(service: string, id: string): boolean;
  /** Shares a health result with the other replicas (local stores: nothing to do). */
  shareHealth(service: string, id: string, state: HealthState): Promise<void>;
  /** Passes a heartbeat to whichever replica checks the instance. */
  heartbeat(service: string, id: string): Promise<void>;
  close(): Promise<void>;
}

/** One control plane: it owns every check, and heartbeats go straight back. */
abstract class LocalStore implements RegistryStore {
  protected listener?: StoreListener;
  abstract load(): Promise<StoredInstance[]>;
  async start(listener: StoreListener): Promise<void> {
    this.listener = listener;
    for (const i of await this.load()) listener.put(i);
  }
  abstract put(instance: StoredInstance): Promise<void>;
  abstract delete(service: string, id: string): Promise<void>;
  owns(): boolean {
    return true;
  }
  async shareHealth(): Promise<void> {}
  async heartbeat(service: string, id: string): Promise<void> {
    this.listener?.heartbeat?.(service, id);
  }
  abstract close(): Promise<void>;
}

export class StoreError extends Error {
  readonly code = 'TESSERA_ERR_STORE';
}

export class MemoryStore extends LocalStore {
  async load() {
    return [];
  }
  async put() {}
  async delete() {}
  async close() {}
}

const key = (service: string, id: string) => `${service}/${id}`;

export class FileStore extends LocalStore {
  private readonly instances = new Map<string, StoredInstance>();
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(readonly file: string) {
    super();
  }

  async load(): Promise<StoredInstance[]> {
    let text: string;
    try {
      text = await fs.promises.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StoreError(`cannot read registry file ${this.file}: ${(err as Error).message}`);
    }
    let data: { instances?: StoredInstance[] };
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new StoreError(`registry file ${this.file} is not valid JSON (${(err as Error).message}); move it aside to start empty`);
    }
    for (const i of data.instances ?? []) this.instances.set(key(i.service, i.id), i);
    return [...this.instances.values()];
  }

  put(instance: StoredInstance): Promise<void> {
    this.instances.set(key(instance.service, instance.id), instance);
    return this.flush();
  }

  delete(service: string, id: string): Promise<void> {
    this.instances.delete(key(service, id));
    return this.flush();
  }

  /** Writes are serialized; changes that arrive during a write go out in the next one. */
  private flush(): Promise<void> {
    this.dirty = true;
    this.writing = this.writing.then(() => (this.dirty ? this.write() : undefined));
    return this.writing;
  }

  private async write(): Promise<void> {
    this.dirty = false;
    const dir = path.dirname(this.file);
    await fs.promises.mkdir(dir, { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const body = JSON.stringify({ version: 1, instances: [...this.instances.values()] }, null, 2) + '\n';
    const handle = await fs.promises.open(tmp, 'w');
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(tmp, this.file);
    const dirHandle = await fs.promises.open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }

  async close(): Promise<void> {
    await this.writing;
  }
}

export function parseStoreUrl(value: string): { kind: 'memory' } | { kind: 'file'; path: string } | { kind: 'etcd'; endpoints: string[] } {
  if (value === 'memory') return { kind: 'memory' };
  if (value.startsWith('file:') && value.length > 5) return { kind: 'file', path: value.slice(5) };
  if (value.startsWith('etcd://')) {
    const endpoints = value.slice(7).split(',').filter(Boolean);
    if (endpoints.length > 0 && endpoints.every((e) => /^[^:/]+:\d+$/.test(e))) return { kind: 'etcd', endpoints: endpoints.map((e) => `http://${e}`) };
  }
  throw new StoreError(`--store must be memory, file:PATH or etcd://HOST:PORT[,HOST:PORT…], got ${JSON.stringify(value)}`);
}
