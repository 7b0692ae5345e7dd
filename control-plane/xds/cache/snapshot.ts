// An immutable, encoded, content-versioned set of resources for one proxy group.
// Encoded once here, then shared by every stream of every proxy in the group.
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

export interface TypeSnapshot {
  /** Content hash of all resources of the type: the SotW version. */
  version: string;
  resources: ReadonlyMap<string, CachedResource>;
}

export type ResourceInput = Partial<Record<ResourceTypeUrl, { name: string; resource: Record<string, unknown> }[]>>;

export type ResourceEncoder = (typeUrl: string, resource: Record<string, unknown>) => { any: EncodedAny; version: string };

export function encodeResource(typeUrl: string, resource: Record<string, unknown>): { any: EncodedAny; version: string } {
  const any = encodeAny(typeUrl, resource);
  return { any, version: hash(any.value) };
}

/** Proxy groups share most resources (every sidecar gets the same clusters), so an
 *  encoding is reused by content across groups and builds. Entries unused for a
 *  whole build are dropped. */
export class EncodeCache {
  private current = new Map<string, { any: EncodedAny; version: string }>();
  private previous = new Map<string, { any: EncodedAny; version: string }>();

  readonly encode: ResourceEncoder = (typeUrl, resource) => {
    const key = `${typeUrl}\n${JSON.stringify(resource)}`;
    let hit = this.current.get(key) ?? this.previous.get(key);
    if (!hit) hit = encodeResource(typeUrl, resource);
    this.current.set(key, hit);
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

export class Snapshot {
  private constructor(
    private readonly types: ReadonlyMap<string, TypeSnapshot>,
    private readonly refs: ReadonlyMap<string, ResourceRef[]>,
  ) {}

  static fromResources(input: ResourceInput, encoder: ResourceEncoder = encodeResource): Snapshot {
    const types = new Map<string, TypeSnapshot>();
    const refs = new Map<string, ResourceRef[]>();
    for (const typeUrl of ADS_ORDER) {
      const resources = new Map<string, CachedResource>();
      for (const { name, resource } of input[typeUrl] ?? []) {
        if (resources.has(name)) throw new InconsistentSnapshotError([`${SHORT_NAME[typeUrl]} ${name} appears twice`]);
        resources.set(name, { name, ...encoder(typeUrl, resource), object: resource });
        refs.set(`${typeUrl} ${name}`, references(typeUrl, resource));
      }
      types.set(typeUrl, { version: versionOf(resources.values()), resources });
    }
    const snapshot = new Snapshot(types, refs);
    const problems = snapshot.consistencyProblems();
    if (problems.length > 0) throw new InconsistentSnapshotError(problems);
    return snapshot;
  }

  get(typeUrl: string): TypeSnapshot {
    return this.types.get(typeUrl) ?? EMPTY;
  }

  /** One string that changes whenever any resource changes. */
  get version(): string {
    return hash(ADS_ORDER.map((t) => this.get(t).version).join(','));
  }

  /** Every EDS/RDS name a cluster or listener points at must be in the snapshot,
   *  or Envoy would wait for it forever while warming. */
  private consistencyProblems(): string[] {
    const problems: string[] = [];
    for (const [from, targets] of this.refs) {
      for (const ref of targets) {
        if (!this.get(ref.typeUrl).resources.has(ref.name)) {
          const [typeUrl, name] = from.split(' ');
          problems.push(
            `${SHORT_NAME[typeUrl as ResourceTypeUrl]} ${name} references ${SHORT_NAME[ref.typeUrl as ResourceTypeUrl]} ${ref.name}, which is missing`,
          );
        }
      }
    }
    return problems;
  }
}

const EMPTY: TypeSnapshot = { version: versionOf([]), resources: new Map() };

/** A version over a subset of resources, as sent to one subscriber. */
export function versionOf(resources: Iterable<CachedResource>): string {
  const parts = [...resources].map((r) => `${r.name}=${r.version}`).sort();
  return hash(parts.join('\n'));
}
