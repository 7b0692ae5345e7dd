// Immutable, encoded, content-versioned resources. A TypeSnapshot holds the
// resources of one type and is shared by every proxy group whose resources of that
// type are the same (every sidecar of a zone gets the same endpoints), so a change
// is encoded and versioned once, not once per group. A Snapshot is one group's view:
// one TypeSnapshot per type.
import { createHash } from 'node:crypto';
import { encodeAny, type EncodedAny } from '../resources/codec.ts';
import { references, type ResourceRef } from '../resources/references.ts';
import { ADS_ORDER, SHORT_NAME, type ResourceTypeUrl } from '../resources/type-urls.ts';

export interface CachedResource {
  name: string;
  /** Content hash of the encoded bytes: the per-resource version in delta xDS. */
  version: string;
  any: EncodedAny;
  /** The resource in object form, for config dumps. */
  object: Record<string, unknown>;
}

export type ResourceInput = Partial<Record<ResourceTypeUrl, { name: string; resource: object }[]>>;

export type ResourceEncoder = (typeUrl: string, resource: object) => { any: EncodedAny; version: string };

export function encodeResource(typeUrl: string, resource: object): { any: EncodedAny; version: string } {
  const any = encodeAny(typeUrl, resource);
  return { any, version: hash(any.value) };
}

/** Proxy groups share most resources and most resources survive a change, so an
 *  encoding is reused by identity (the same object built once for many groups) or
 *  else by content, across groups and builds. Entries unused for a whole build are
 *  dropped. */
export class EncodeCache {
  private byObject = new WeakMap<object, { any: EncodedAny; version: string }>();
  private current = new Map<string, { any: EncodedAny; version: string }>();
  private previous = new Map<string, { any: EncodedAny; version: string }>();

  readonly encode: ResourceEncoder = (typeUrl, resource) => {
    const same = this.byObject.get(resource);
    if (same && same.any.type_url === typeUrl) return same;
    const key = `${typeUrl}\n${JSON.stringify(resource)}`;
    let hit = this.current.get(key) ?? this.previous.get(key);
    if (!hit) hit = encodeResource(typeUrl, resource);
    this.current.set(key, hit);
    this.byObject.set(resource, hit);
    return hit;
  };

  /** Call between builds. */
  nextGeneration(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

export class InconsistentSnapshotError extends Error {
  readonly code = 'TESSERA_ERR_INCONSISTENT_SNAPSHOT';
  constructor(readonly problems: string[]) {
    super(`snapshot refused: ${problems.join('; ')}`);
  }
}

export function hash(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('base64url').slice(0, 16);
}

/** What one subscription of a type is served: its resources, their SotW version,
 *  and anything a server wants to derive once for every stream with that selection. */
export interface Selection {
  version: string;
  resources: CachedResource[];
  /** Per-selection memo for the server (e.g. a pre-encoded response body). */
  derived: Map<string, unknown>;
}

let nextTypeSnapshotId = 0;
/** How many predecessors a TypeSnapshot remembers. */
const HISTORY = 8;

export class TypeSnapshot {
  /** Content hash of all resources of the type: the SotW version of a wildcard. */
  readonly version: string;
  /** Process-unique, for keys that combine several type snapshots. */
  readonly id = ++nextTypeSnapshotId;
  private readonly selections = new Map<string, Selection>();
  /** The last changedSince answer (streams mostly all hold the same predecessor); by
   *  id, so it keeps no older snapshot alive. */
  private sinceMemo?: { olderId: number; names: ReadonlySet<string> | undefined };

  private constructor(
    readonly typeUrl: string,
    readonly resources: ReadonlyMap<string, CachedResource>,
    /** The snapshot this one was derived from, and the names that differ from it
     *  (changed, added or removed): lets a stream that holds `previous` look at
     *  only those names. */
    readonly previous?: TypeSnapshot,
    readonly changed?: ReadonlySet<string>,
  ) {
    this.version = versionOf(resources.values());
  }

  static of(typeUrl: string, resources: Iterable<CachedResource>): TypeSnapshot {
    const map = new Map<string, CachedResource>();
    for (const r of resources) {
      if (map.has(r.name)) throw new InconsistentSnapshotError([`${SHORT_NAME[typeUrl as ResourceTypeUrl]} ${r.name} appears twice`]);
      map.set(r.name, r);
    }
    return new TypeSnapshot(typeUrl, map);
  }

  static empty(typeUrl: string): TypeSnapshot {
    return new TypeSnapshot(typeUrl, new Map());
  }

  /** A successor with `updates` replacing (or adding) resources by name and `removed`
   *  names taken out; it remembers which names changed. Unchanged content (same
   *  version) is not counted as a change; with no change at all, `this` is returned. */
  update(updates: Iterable<CachedResource>, removed: Iterable<string> = []): TypeSnapshot {
    const changed = new Set<string>();
    const next = new Map(this.resources);
    for (const r of updates) {
      if (next.get(r.name)?.version !== r.version) changed.add(r.name);
      next.set(r.name, r);
    }
    for (const name of removed) if (next.delete(name)) changed.add(name);
    if (changed.size === 0) return this;
    const successor = new TypeSnapshot(this.typeUrl, next, this, changed);
    // Keep a short history only, so old snapshots can be collected.
    let oldest: TypeSnapshot = successor;
    for (let i = 0; i < HISTORY && oldest.previous; i++) oldest = oldest.previous;
    oldest.forgetPrevious();
    return successor;
  }

  /** The names that may differ between `older` and this snapshot, when `older` is a
   *  recent ancestor; undefined when it is not (compare everything then). Worked out
   *  once per ancestor: every stream that held `older` asks the same. */
  changedSince(older: TypeSnapshot): ReadonlySet<string> | undefined {
    if (this.sinceMemo?.olderId === older.id) return this.sinceMemo.names;
    const names = new Set<string>();
    let found = false;
    let at: TypeSnapshot | undefined = this;
    for (let step = 0; at && step <= HISTORY; step++) {
      if (at === older) {
        found = true;
        break;
      }
      if (!at.changed || !at.previous) break;
      for (const name of at.changed) names.add(name);
      at = at.previous;
    }
    const result = found ? names : undefined;
    this.sinceMemo = { olderId: older.id, names: result };
    return result;
  }

  /** The resources a subscription gets: everything for a wildcard, else the named
   *  ones that exist, sorted by name. `key` identifies the name set (see selectionKey);
   *  the result is computed once per key and shared by every stream that asks. */
  select(key: string, wildcard: boolean, names: ReadonlySet<string>): Selection {
    let selection = this.selections.get(key);
    if (!selection) {
      const resources: CachedResource[] = [];
      if (wildcard) resources.push(...this.resources.values());
      else {
        for (const name of [...names].sort()) {
          const r = this.resources.get(name);
          if (r) resources.push(r);
        }
      }
      selection = { version: versionOf(resources), resources, derived: new Map() };
      this.selections.set(key, selection);
    }
    return selection;
  }

  /** Drops the link to the predecessor, so a long chain of snapshots is not kept alive. */
  forgetPrevious(): void {
    (this as { previous?: TypeSnapshot }).previous = undefined;
  }
}

/** The key a subscription's name set is memoized under in TypeSnapshot.select. */
export function selectionKey(wildcard: boolean, names: ReadonlySet<string>): string {
  return wildcard ? '*' : `=${[...names].sort().join('\n')}`;
}

export class Snapshot {
  private constructor(private readonly types: ReadonlyMap<string, TypeSnapshot>) {}

  static fromResources(input: ResourceInput, encoder: ResourceEncoder = encodeResource): Snapshot {
    const types = new Map<string, TypeSnapshot>();
    for (const typeUrl of ADS_ORDER) {
      const resources = (input[typeUrl] ?? []).map(({ name, resource }) => ({ name, ...encoder(typeUrl, resource), object: resource as Record<string, unknown> }));
      types.set(typeUrl, TypeSnapshot.of(typeUrl, resources));
    }
    return Snapshot.compose(types);
  }

  /** A snapshot made of (possibly shared) type snapshots; refused when a reference
   *  does not resolve. */
  static compose(types: ReadonlyMap<string, TypeSnapshot>): Snapshot {
    const snapshot = new Snapshot(types);
    const problems = snapshot.consistencyProblems();
    if (problems.length > 0) throw new InconsistentSnapshotError(problems);
    return snapshot;
  }

  get(typeUrl: string): TypeSnapshot {
    return this.types.get(typeUrl) ?? emptyOf(typeUrl);
  }

  /** The same snapshot with one type replaced by a snapshot holding the same names
   *  (an endpoint update): references cannot break, so nothing is checked again. */
  withSameNames(typeUrl: string, next: TypeSnapshot): Snapshot {
    const current = this.get(typeUrl);
    if (current === next) return this;
    if (current.resources.size !== next.resources.size) throw new Error(`withSameNames: ${typeUrl} names differ`);
    const types = new Map(this.types);
    types.set(typeUrl, next);
    return new Snapshot(types);
  }

  /** One string that changes whenever any resource changes. */
  get version(): string {
    return hash(ADS_ORDER.map((t) => this.get(t).version).join(','));
  }

  /** Every EDS/RDS name a cluster or listener points at must be in the snapshot,
   *  or Envoy would wait for it forever while warming. */
  private consistencyProblems(): string[] {
    const problems: string[] = [];
    for (const ts of this.types.values()) {
      for (const r of ts.resources.values()) {
        for (const ref of referencesOf(ts.typeUrl, r)) {
          if (!this.get(ref.typeUrl).resources.has(ref.name)) {
            problems.push(
              `${SHORT_NAME[ts.typeUrl as ResourceTypeUrl]} ${r.name} references ${SHORT_NAME[ref.typeUrl as ResourceTypeUrl]} ${ref.name}, which is missing`,
            );
          }
        }
      }
    }
    return problems;
  }
}

const refsCache = new WeakMap<CachedResource, ResourceRef[]>();
function referencesOf(typeUrl: string, r: CachedResource): ResourceRef[] {
  let refs = refsCache.get(r);
  if (!refs) refsCache.set(r, (refs = references(typeUrl, r.object)));
  return refs;
}

const EMPTY = new Map<string, TypeSnapshot>();
function emptyOf(typeUrl: string): TypeSnapshot {
  let ts = EMPTY.get(typeUrl);
  if (!ts) EMPTY.set(typeUrl, (ts = TypeSnapshot.empty(typeUrl)));
  return ts;
}

/** A version over a subset of resources, as sent to one subscriber. */
export function versionOf(resources: Iterable<CachedResource>): string {
  const parts = [...resources].map((r) => `${r.name}=${r.version}`).sort();
  return hash(parts.join('\n'));
}
