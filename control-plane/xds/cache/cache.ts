// The snapshot cache: one current Snapshot per proxy group, and watchers per group.
// The xDS server depends only on the ResourceCache interface.
import { EventEmitter } from 'node:events';
import type { Snapshot } from './snapshot.ts';

export interface ResourceCache {
  /** Calls `listener` with the group's snapshot now (if there is one) and on every
   *  change; returns the cancel function. */
  watch(group: string, listener: (snapshot: Snapshot) => void): () => void;
}

export interface SnapshotCacheEvents {
  /** A proxy group gained its first watcher and has no snapshot yet. */
  demand: [group: string];
  /** A group lost its last watcher. */
  idle: [group: string];
}

export class SnapshotCache extends EventEmitter<SnapshotCacheEvents> implements ResourceCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, Set<(s: Snapshot) => void>>();

  watch(group: string, listener: (snapshot: Snapshot) => void): () => void {
    let set = this.watchers.get(group);
    if (!set) this.watchers.set(group, (set = new Set()));
    set.add(listener);
    const current = this.snapshots.get(group);
    if (current) listener(current);
    else if (set.size === 1) this.emit('demand', group);
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.watchers.delete(group);
        this.emit('idle', group);
      }
    };
  }

  /** Publishes a snapshot; an identical one (same content version) is not pushed again. */
  setSnapshot(group: string, snapshot: Snapshot): boolean {
    const previous = this.snapshots.get(group);
    if (previous && previous.version === snapshot.version) return false;
    this.snapshots.set(group, snapshot);
    for (const listener of [...(this.watchers.get(group) ?? [])]) listener(snapshot);
    return true;
  }

  getSnapshot(group: string): Snapshot | undefined {
    return this.snapshots.get(group);
  }

  clearSnapshot(group: string): void {
    this.snapshots.delete(group);
  }

  /** Groups that have watchers now. */
  watchedGroups(): string[] {
    return [...this.watchers.keys()];
  }
}
