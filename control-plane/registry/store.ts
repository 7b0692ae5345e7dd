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

/** Whether the store takes writes now; the reason is shown by /readyz. */
export interface StoreStatus {
  ok: boolean;
  reason?: string;
}

export interface RegistryStore {
  /** Healthy unless the store is known to be failing (a write failed, etcd is away). */
  status?(): StoreStatus;
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
  /** Small documents controllers keep across restarts (a Canary's phase and step),
   *  by kind and key; `putState(kind, key, undefined)` deletes. */
  loadState(kind: string): Promise<Map<string, unknown>>;
  putState(kind: string, key: string, value: unknown): Promise<void>;
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
  abstract loadState(kind: string): Promise<Map<string, unknown>>;
  abstract putState(kind: string, key: string, value: unknown): Promise<void>;
  abstract close(): Promise<void>;
}

type StateMap = Record<string, Record<string, unknown>>;

function setState(state: StateMap, kind: string, key: string, value: unknown): void {
  if (value === undefined) {
    if (state[kind]) delete state[kind][key];
  } else (state[kind] ??= {})[key] = value;
}

export class StoreError extends Error {
  readonly code: string = 'TESSERA_ERR_STORE';
}

/** The store cannot be reached now (etcd away): try again later (HTTP 503). */
export class StoreUnavailableError extends StoreError {
  override readonly code = 'TESSERA_ERR_STORE_UNAVAILABLE';
}

export class MemoryStore extends LocalStore {
  private readonly state: StateMap = {};
  async load() {
    return [];
  }
  async put() {}
  async delete() {}
  async loadState(kind: string) {
    return new Map(Object.entries(this.state[kind] ?? {}));
  }
  async putState(kind: string, key: string, value: unknown) {
    setState(this.state, kind, key, structuredClone(value));
  }
  async close() {}
}

const key = (service: string, id: string) => `${service}/${id}`;

/** Each change is written on its own merits: a failed write fails the requests it
 *  carried (with the reason) and leaves the file and the committed state as they
 *  were, and the next write starts again from that state. Changes that arrive during
 *  a write go out together in the next one. */
export class FileStore extends LocalStore {
  private committed = new Map<string, StoredInstance>();
  private committedState: StateMap = {};
  private queue: { change: (m: Map<string, StoredInstance>, state: StateMap) => void; resolve: () => void; reject: (e: Error) => void }[] = [];
  private draining?: Promise<void>;
  private failure?: { since: string; reason: string };
  private retryTimer?: NodeJS.Timeout;

  constructor(
    readonly file: string,
    private readonly log?: (line: string) => void,
  ) {
    super();
  }

  async load(): Promise<StoredInstance[]> {
    await this.removeLeftovers();
    let text: string;
    try {
      text = await fs.promises.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StoreError(`cannot read registry file ${this.file}: ${(err as Error).message}`);
    }
    let data: { instances?: StoredInstance[]; state?: StateMap };
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new StoreError(`registry file ${this.file} is not valid JSON (${(err as Error).message}); move it aside to start empty`);
    }
    for (const i of data.instances ?? []) this.committed.set(key(i.service, i.id), i);
    this.committedState = data.state ?? {};
    return [...this.committed.values()];
  }

  async loadState(kind: string): Promise<Map<string, unknown>> {
    return new Map(Object.entries(structuredClone(this.committedState[kind] ?? {})));
  }

  putState(kind: string, key: string, value: unknown): Promise<void> {
    return this.enqueue((_m, state) => setState(state, kind, key, value));
  }

  /** Temp files of writes that a crash cut short (ours carry the writer's pid). */
  private async removeLeftovers(): Promise<void> {
    const dir = path.dirname(this.file);
    const prefix = `${path.basename(this.file)}.tmp-`;
    let names: string[];
    try {
      names = await fs.promises.readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const pid = Number(name.slice(prefix.length));
      if (Number.isInteger(pid) && pid !== process.pid && alive(pid)) continue; // another writer's, in progress
      await fs.promises.rm(path.join(dir, name), { force: true, recursive: true }).catch(() => {});
      this.log?.(`registry file: removed ${name}, left by an interrupted write`);
    }
  }

  status(): StoreStatus {
    return this.failure ? { ok: false, reason: `registry file ${this.file} cannot be written since ${this.failure.since}: ${this.failure.reason}` } : { ok: true };
  }

  put(instance: StoredInstance): Promise<void> {
    return this.enqueue((m) => m.set(key(instance.service, instance.id), instance));
  }

  delete(service: string, id: string): Promise<void> {
    return this.enqueue((m) => m.delete(key(service, id)));
  }

  private enqueue(change: (m: Map<string, StoredInstance>, state: StateMap) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ change, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      const next = new Map(this.committed);
      const nextState = structuredClone(this.committedState);
      for (const op of batch) op.change(next, nextState);
      try {
        await this.write(next, nextState);
        this.committed = next;
        this.committedState = nextState;
        if (this.failure) this.log?.(`registry file ${this.file} written again (failing since ${this.failure.since})`);
        this.failure = undefined;
        for (const op of batch) op.resolve();
      } catch (err) {
        const reason = (err as Error).message;
        if (!this.failure) this.failure = { since: new Date().toISOString(), reason };
        else this.failure.reason = reason;
        this.log?.(`registry file ${this.file}: write failed, ${batch.length} change(s) not stored: ${reason}`);
        const error = new StoreError(`registry file ${this.file} cannot be written: ${reason}`);
        for (const op of batch) op.reject(error);
        this.retryLater();
      }
    }
    this.draining = undefined;
  }

  /** While failing, try a write now and then, so readiness comes back by itself
   *  once the disk is fixed (the committed state is what gets written). */
  private retryLater(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.failure) this.enqueue(() => {}).catch(() => {});
    }, 2000);
    this.retryTimer.unref();
  }

  private async write(instances: Map<string, StoredInstance>, state: StateMap): Promise<void> {
    const dir = path.dirname(this.file);
    await fs.promises.mkdir(dir, { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const body = JSON.stringify({ version: 1, instances: [...instances.values()], state }, null, 2) + '\n';
    try {
      const handle = await fs.promises.open(tmp, 'w');
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.promises.rename(tmp, this.file);
    } catch (err) {
      await fs.promises.unlink(tmp).catch(() => {});
      throw err;
    }
    const dirHandle = await fs.promises.open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.retryTimer);
    await this.draining;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
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
