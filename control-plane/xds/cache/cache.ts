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
  /** A group lost its last watcher. */
  idle: [group: string];
}

export class SnapshotCache extends EventEmitter<SnapshotCacheEvents> implements ResourceCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, Set<(s: Snapshot) => void>>();

  /** Called before a group's snapshot is handed to a new watcher, so the owner can
   *  bring it up to date first: a snapshot built before the latest change is never
   *  served to a proxy that (re)connects. */
  prepare?: (group: string) => void;

  watch(group: string, listener: (snapshot: Snapshot) => void): () => void {
    let set = this.watchers.get(group);
    if (!set) this.watchers.set(group, (set = new Set()));
    set.add(listener);
    this.prepare?.(group);
    const current = this.snapshots.get(group);
    if (current && set.has(listener)) listener(current);
    return () => {
      if (!set.delete(listener)) return;
      if (set.size === 0) {
        this.watchers.delete(group);
        this.emit('idle', group);
      }
    };
  }

  /** Publishes a snapshot; an identical one (same object) is not pushed again. */
  setSnapshot(group: string, snapshot: Snapshot): boolean {
    if (this.snapshots.get(group) === snapshot) return false;
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

  isWatched(group: string): boolean {
    return this.watchers.has(group);
  }

  /** Groups that have watchers now. */
  watchedGroups(): string[] {
    return [...this.watchers.keys()];
  }

  /** Groups that have a snapshot, watched or not. */
  groups(): string[] {
    return [...this.snapshots.keys()];
  }
}
