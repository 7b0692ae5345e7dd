// Model + endpoints -> translate -> snapshot cache, incrementally.
//
// The resources of one type are built once per change for every proxy group that
// depends on the same part of the proxy context (translate's dependencyKey) and shared
// as one TypeSnapshot; a group's Snapshot is its choice of shared type snapshots.
// - A config change rebuilds every type once per distinct key, validates every
//   group's snapshot, and publishes all of them or none.
// - An endpoint change re-translates only the load assignments of the services whose
//   instances changed, once per zone, and swaps that one type in each group.
// - Freshness by construction: every input change bumps `generation`; every group,
//   watched or not, is rebuilt on every change, and a group whose snapshot is behind
//   is rebuilt before the cache hands it to a (re)connecting proxy.
import { EventEmitter } from 'node:events';
import { emptyModel, serviceKey, type Endpoint, type MeshModel, type MeshService, type ProxyContext } from '../model/types.ts';
import {
  dependencyKey,
  meshView,
  translateServiceEndpoints,
  translateType,
  TRANSLATED_TYPES,
  type MeshView,
  type TranslatedType,
} from '../translate/index.ts';
import { groupBy } from '../translate/context.ts';
import { outboundClusterName } from '../translate/names.ts';
import { TypeUrl } from '../xds/resources/type-urls.ts';
import type { SnapshotCache } from '../xds/cache/cache.ts';
import { EncodeCache, encodeResource, Snapshot, TypeSnapshot, type CachedResource } from '../xds/cache/snapshot.ts';
import type { XdsNode } from '../xds/server/types.ts';
import { groupKey, proxyContextOf } from './proxy-context.ts';

export interface ReconcilerEvents {
  /** A change is about to be published to the groups; every push that streams make
   *  until 'published' is caused by it (publication is synchronous). */
  publishing: [change: ChangeSummary];
  /** Snapshots were rebuilt and published: how many groups, how long it took. */
  published: [change: ChangeSummary, groups: number, ms: number];
  error: [group: string, error: Error];
}

/** What one applied change altered, for logs, metrics and the changes feed. */
export interface ChangeSummary {
  generation: number;
  /** config: a config change; registration: a registry change that adds or removes a
   *  service; endpoints: instances or health of existing services; retirement: clusters
   *  kept after leaving the config are dropped; canary: a Canary controller moved
   *  traffic (its note says which Canary, step and weight). */
  kind: 'config' | 'registration' | 'endpoints' | 'retirement' | 'canary';
  /** Services whose endpoints changed (kind endpoints). */
  services: string[];
  /** What the caller said about the change (e.g. the config version and files). */
  note?: Record<string, unknown>;
}

export interface ReconcilerOptions {
  /** Input changes closer together than this are applied as one. */
  debounceMs?: number;
  /** How long a cluster removed from the config is still served (make-before-break). */
  retireGraceMs?: number;
  /** How long a group without watchers is kept before it is dropped. */
  idleGraceMs?: number;
  /** At most this many proxy groups; a node that would make one more is refused. */
  maxGroups?: number;
}

const declaredKeys = new WeakMap<MeshModel, Set<string>>();

/** Everything of a model but its endpoints and where things were declared. */
function shapeOf(model: MeshModel): string {
  const { endpoints: _endpoints, ...rest } = model;
  return JSON.stringify(rest, (key, value) => (key === 'source' ? undefined : value));
}

export class TooManyGroupsError extends Error {
  readonly code = 'TESSERA_ERR_TOO_MANY_PROXY_GROUPS';
}

/** Contexts every config is tried against before it is accepted. */
const PROBE_CONTEXTS: ProxyContext[] = [
  { kind: 'proxyless' },
  { kind: 'sidecar', namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 } },
];

interface Group {
  context: ProxyContext;
  /** The input generation its snapshot was built from. */
  builtGeneration: number;
  /** When it lost its last watcher (or was created and not yet watched). */
  idleSince?: number;
}

/** Resources of one type that left the config, still served until `until`. */
interface Retired {
  until: number;
  /** By dependency key of the type snapshot they were in. */
  byKey: Map<string, CachedResource>;
}

export class Reconciler extends EventEmitter<ReconcilerEvents> {
  private readonly options: Required<ReconcilerOptions>;
  /** The config as the files say it. */
  private config: MeshModel = emptyModel();
  /** What controllers lay over the config before it is served (Canary weights). */
  private overlay?: (config: MeshModel) => MeshModel;
  /** Registry instances by service key, with a fingerprint to tell what changed. */
  private registry = new Map<string, { endpoints: Endpoint[]; fingerprint: string }>();
  /** The model as served (config + services implied by registrations) and its view. */
  private view: MeshView = meshView(emptyModel(), []);
  /** Shared type snapshots of the current view, by `${typeUrl}|${dependencyKey}`. */
  private types = new Map<string, TypeSnapshot>();
  /** A context for each key in `types`, to re-translate that key's resources. */
  private typeContexts = new Map<string, ProxyContext>();
  private readonly groups = new Map<string, Group>();
  private readonly retired = new Map<TranslatedType, Map<string, Retired>>();
  private readonly encodings = new EncodeCache();

  private generation = 0;
  /** What the caller said about a config edit that turned out to change endpoints only. */
  private pendingNote?: Record<string, unknown>;
  private pending: { model: boolean; services: Set<string> } = { model: false, services: new Set() };
  private timer?: NodeJS.Timeout;
  private retireTimer?: NodeJS.Timeout;
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(
    private readonly cache: SnapshotCache,
    options: ReconcilerOptions = {},
  ) {
    super();
    this.options = { debounceMs: 5, retireGraceMs: 5000, idleGraceMs: 60_000, maxGroups: 10_000, ...options };
    cache.prepare = (group) => this.prepare(group);
    cache.on('idle', (group) => {
      const g = this.groups.get(group);
      if (g) g.idleSince = Date.now();
    });
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(50, this.options.idleGraceMs / 2));
    this.sweepTimer.unref();
  }

  /** The NodeGrouper for the xDS server. Proxies with the same context share a group;
   *  node metadata that is not part of the context is not kept. */
  readonly groupOf = (node: XdsNode): string => {
    const context = proxyContextOf(node);
    const key = groupKey(context);
    if (!this.groups.has(key)) {
      if (this.groups.size >= this.options.maxGroups) this.sweep(true);
      if (this.groups.size >= this.options.maxGroups) {
        throw new TooManyGroupsError(`${this.options.maxGroups} proxy groups exist already; node metadata makes a new one`);
      }
      this.groups.set(key, { context, builtGeneration: -1, idleSince: Date.now() });
    }
    return key;
  };

  contextOf(group: string): ProxyContext | undefined {
    return this.groups.get(group)?.context;
  }

  get groupCount(): number {
    return this.groups.size;
  }

  /** Translates `model` for every group and a few probe contexts, and publishes the
   *  result only if every one of them could be built: a config that cannot be served
   *  throws and changes nothing. */
  applyModel(model: MeshModel, note?: Record<string, unknown>): void {
    const previous = this.config;
    // An edit that changes only EndpointSlices is an endpoint change: only the load
    // assignments of the services whose declared instances changed are rebuilt.
    if (this.groups.size > 0 && shapeOf(model) === shapeOf(previous)) {
      const before = groupBy(previous.endpoints, (e) => serviceKey(e.service, e.namespace));
      const after = groupBy(model.endpoints, (e) => serviceKey(e.service, e.namespace));
      this.config = model;
      for (const key of new Set([...before.keys(), ...after.keys()])) {
        if (JSON.stringify(before.get(key) ?? []) !== JSON.stringify(after.get(key) ?? [])) this.pending.services.add(key);
      }
      this.pendingNote = note;
      this.flush();
      this.pendingNote = undefined;
      return;
    }
    this.config = model;
    try {
      this.rebuild({ strict: true, kind: 'config', note });
    } catch (err) {
      this.config = previous;
      throw err;
    }
  }

  /** Sets what is laid over the config model before serving (the files stay as
   *  they are); it takes effect with the next rebuild (publishOverlay, a config change). */
  setOverlay(overlay: ((config: MeshModel) => MeshModel) | undefined): void {
    this.overlay = overlay;
  }

  /** Serves what the overlay gives now, as a change of kind `canary`; a result that
   *  cannot be served throws and publishes nothing. */
  publishOverlay(note?: Record<string, unknown>): void {
    this.rebuild({ strict: true, kind: 'canary', note });
  }

  /** Like applyModel, but a failure is reported as an 'error' event. */
  setModel(model: MeshModel): void {
    try {
      this.applyModel(model);
    } catch (err) {
      this.emit('error', '*', err as Error);
    }
  }

  /** Every registry instance (the whole list); what changed is worked out per service. */
  setEndpoints(endpoints: Endpoint[]): void {
    const next = new Map<string, { endpoints: Endpoint[]; fingerprint: string }>();
    for (const [key, list] of groupBy(endpoints, (e) => serviceKey(e.service, e.namespace))) {
      const previous = this.registry.get(key);
      // Same objects in the same order need no fingerprint.
      if (previous && previous.endpoints.length === list.length && previous.endpoints.every((e, i) => e === list[i])) {
        next.set(key, previous);
        continue;
      }
      const fingerprint = JSON.stringify(list);
      next.set(key, { endpoints: list, fingerprint });
      if (previous?.fingerprint !== fingerprint) this.pending.services.add(key);
    }
    for (const key of this.registry.keys()) if (!next.has(key)) this.pending.services.add(key);
    this.registry = next;
    if (this.pending.services.size === 0) return;
    this.generation++;
    this.schedule();
  }

  /** Applies pending changes now (e.g. in tests, or before a proxy is served). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { model, services } = this.pending;
    if (!model && services.size === 0) return;
    this.pending = { model: false, services: new Set() };
    // A registration of an undeclared service creates it (and its last one removes
    // it): that changes the served model, not only endpoints.
    const impliedChanged = [...services].some(
      (key) => !this.declared.has(key) && this.view.byKey.get(key)?.ports[0]?.targetPort !== this.registry.get(key)?.endpoints[0]?.port,
    );
    if (model || impliedChanged) this.rebuild({ strict: false, kind: 'registration', services: [...services] });
    else this.updateEndpoints(services);
  }

  /** Rebuilds every group from scratch (config change, retirement expiry). */
  rebuildAll(kind: ChangeSummary['kind'] = 'config'): void {
    this.flush();
    this.rebuild({ strict: false, kind });
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.options.debounceMs);
  }

  private get declared(): Set<string> {
    let set = declaredKeys.get(this.config);
    if (!set) declaredKeys.set(this.config, (set = new Set(this.config.services.map((s) => serviceKey(s.name, s.namespace)))));
    return set;
  }

  private allEndpoints(): Endpoint[] {
    const out = [...this.config.endpoints];
    for (const { endpoints } of this.registry.values()) out.push(...endpoints);
    return out;
  }

  /** The model as served: registering an instance of a service no config file
   *  declares creates that service (as in Consul), its port taken from the instance. */
  private servedModel(): MeshModel {
    const config = this.overlay ? this.overlay(this.config) : this.config;
    const declared = this.declared;
    const implied: MeshService[] = [];
    for (const [key, { endpoints }] of this.registry) {
      if (declared.has(key)) continue;
      const e = endpoints[0];
      implied.push({ name: e.service, namespace: e.namespace, ports: [{ name: 'http', port: e.port, targetPort: e.port, appProtocol: 'http' }] });
    }
    if (implied.length === 0) return config;
    implied.sort((a, b) => a.name.localeCompare(b.name));
    return { ...config, services: [...config.services, ...implied] };
  }

  // ---- full rebuild (config changes) ----

  private rebuild({ strict, kind, services = [], note }: { strict: boolean; kind: ChangeSummary['kind']; services?: string[]; note?: Record<string, unknown> }): void {
    const started = performance.now();
    this.pending = { model: false, services: new Set() };
    clearTimeout(this.timer);
    this.timer = undefined;
    const view = meshView(this.servedModel(), this.allEndpoints());
    const types = new Map<string, TypeSnapshot>();
    const typeContexts = new Map<string, ProxyContext>();
    const retired = this.retire(view);
    const built = new Map<string, Snapshot>();
    const shared = new Map<string, Snapshot>();
    const compose = (context: ProxyContext) => this.compose(view, context, types, typeContexts, retired, shared);

    if (strict) for (const context of PROBE_CONTEXTS) compose(context);
    for (const [key, group] of this.groups) {
      try {
        built.set(key, compose(group.context));
      } catch (err) {
        if (strict) throw err;
        this.emit('error', key, err as Error);
      }
    }

    this.view = view;
    this.types = types;
    this.typeContexts = typeContexts;
    this.commitRetired(retired);
    this.generation++;
    const change: ChangeSummary = { generation: this.generation, kind, services, ...(note ? { note } : {}) };
    this.emit('publishing', change);
    for (const [key, snapshot] of built) this.publish(key, snapshot);
    this.encodings.nextGeneration();
    this.emit('published', change, built.size, performance.now() - started);
  }

  /** One group's snapshot from shared type snapshots; groups that choose the same
   *  type snapshots share one Snapshot, checked for consistency once. */
  private compose(
    view: MeshView,
    context: ProxyContext,
    types: Map<string, TypeSnapshot>,
    typeContexts: Map<string, ProxyContext>,
    retired: Map<TranslatedType, Map<string, Retired>>,
    shared: Map<string, Snapshot>,
  ): Snapshot {
    const chosen = new Map<string, TypeSnapshot>();
    for (const typeUrl of TRANSLATED_TYPES) {
      const key = `${typeUrl}|${dependencyKey(context, typeUrl)}`;
      let ts = types.get(key);
      if (!ts) {
        ts = this.buildType(view, context, typeUrl, key, retired.get(typeUrl));
        types.set(key, ts);
        typeContexts.set(key, context);
      }
      chosen.set(typeUrl, ts);
    }
    const combination = TRANSLATED_TYPES.map((t) => chosen.get(t)!.id).join(',');
    let snapshot = shared.get(combination);
    if (!snapshot) shared.set(combination, (snapshot = Snapshot.compose(chosen)));
    return snapshot;
  }

  private buildType(view: MeshView, context: ProxyContext, typeUrl: TranslatedType, key: string, retired?: Map<string, Retired>): TypeSnapshot {
    const resources = translateType(view, context, typeUrl).map((r) => this.cached(typeUrl, r.name, r.resource));
    const names = new Set(resources.map((r) => r.name));
    for (const [name, entry] of retired ?? []) {
      if (names.has(name)) continue;
      // A key that appeared after the resource left the config borrows any key's copy:
      // a cluster kept for a few seconds must keep its endpoints.
      const kept = entry.byKey.get(key) ?? (typeUrl === TypeUrl.ClusterLoadAssignment ? entry.byKey.values().next().value : undefined);
      if (kept) resources.push(kept);
    }
    const ts = TypeSnapshot.of(typeUrl, resources.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
    // Unchanged content keeps its identity, so streams skip it at a glance.
    const previous = this.types.get(key);
    return previous && previous.version === ts.version ? previous : ts;
  }

  private cached(typeUrl: string, name: string, resource: object): CachedResource {
    return { name, ...this.encodings.encode(typeUrl, resource), object: resource as Record<string, unknown> };
  }

  /** Make-before-break: clusters (and their endpoints) that leave the config stay
   *  served for a grace period, so proxies first move their routes off them and never
   *  route to a cluster they no longer have. Works out what leaves with this rebuild. */
  private retire(view: MeshView): Map<TranslatedType, Map<string, Retired>> {
    const now = Date.now();
    const until = now + this.options.retireGraceMs;
    const next = new Map<TranslatedType, Map<string, Retired>>();
    const wanted = new Set(view.services.flatMap((s) => s.ports.map((p) => outboundClusterName(s.name, s.namespace, p.port))));
    for (const typeUrl of [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment] as const) {
      const before = this.retired.get(typeUrl) ?? new Map<string, Retired>();
      const entries = new Map<string, Retired>();
      for (const [name, entry] of before) if (entry.until > now && !wanted.has(name)) entries.set(name, entry);
      if (this.options.retireGraceMs > 0) {
        for (const [key, ts] of this.types) {
          if (!key.startsWith(`${typeUrl}|`)) continue;
          for (const r of ts.resources.values()) {
            // Only outbound clusters retire (with their load assignments), once.
            if (wanted.has(r.name) || before.has(r.name) || !r.name.startsWith('outbound|')) continue;
            let entry = entries.get(r.name);
            if (!entry) entries.set(r.name, (entry = { until, byKey: new Map() }));
            if (!entry.byKey.has(key)) entry.byKey.set(key, r);
          }
        }
      }
      next.set(typeUrl, entries);
    }
    return next;
  }

  private commitRetired(retired: Map<TranslatedType, Map<string, Retired>>): void {
    this.retired.clear();
    let soonest = Infinity;
    for (const [typeUrl, entries] of retired) {
      this.retired.set(typeUrl, entries);
      for (const e of entries.values()) soonest = Math.min(soonest, e.until);
    }
    clearTimeout(this.retireTimer);
    this.retireTimer = undefined;
    if (soonest < Infinity) {
      this.retireTimer = setTimeout(() => this.rebuildAll('retirement'), Math.max(0, soonest - Date.now()) + 20);
      this.retireTimer.unref();
    }
  }

  // ---- incremental update (endpoint changes) ----

  private updateEndpoints(services: Set<string>): void {
    const started = performance.now();
    const instances = new Map(this.view.instances);
    const fileEndpoints = groupBy(this.config.endpoints, (e) => serviceKey(e.service, e.namespace));
    for (const key of services) {
      const list = [...(fileEndpoints.get(key) ?? []), ...(this.registry.get(key)?.endpoints ?? [])];
      if (list.length > 0) instances.set(key, list);
      else instances.delete(key);
    }
    const view: MeshView = { ...this.view, instances };
    const changedServices = [...services].map((key) => view.byKey.get(key)).filter((s): s is MeshService => s !== undefined);

    const replaced = new Map<TypeSnapshot, TypeSnapshot>();
    for (const [key, ts] of this.types) {
      if (!key.startsWith(`${TypeUrl.ClusterLoadAssignment}|`)) continue;
      const context = this.typeContexts.get(key)!;
      const updates = changedServices.flatMap((service) =>
        translateServiceEndpoints(view, context, service).map((r) => ({
          name: r.name,
          ...encodeResource(TypeUrl.ClusterLoadAssignment, r.resource),
          object: r.resource as Record<string, unknown>,
        })),
      );
      const next = ts.update(updates);
      if (next !== ts) {
        replaced.set(ts, next);
        this.types.set(key, next);
      }
    }
    this.view = view;
    this.generation++;
    const note = this.pendingNote;
    this.pendingNote = undefined;
    const change: ChangeSummary = {
      generation: this.generation,
      kind: 'endpoints',
      services: changedServices.map((s) => serviceKey(s.name, s.namespace)),
      ...(note ? { note } : {}),
    };
    this.emit('publishing', change);
    const successors = new Map<Snapshot, Snapshot>();
    let groups = 0;
    for (const [key, group] of this.groups) {
      const current = this.cache.getSnapshot(key);
      const eds = current?.get(TypeUrl.ClusterLoadAssignment);
      const wanted = this.types.get(`${TypeUrl.ClusterLoadAssignment}|${dependencyKey(group.context, TypeUrl.ClusterLoadAssignment)}`);
      if (!current || group.builtGeneration < 0 || !eds || (eds !== wanted && replaced.get(eds) !== wanted)) {
        // Never built, or its last build failed: build it whole.
        this.buildGroup(key, group);
        continue;
      }
      let next = successors.get(current);
      if (!next) successors.set(current, (next = current.withSameNames(TypeUrl.ClusterLoadAssignment, wanted!)));
      if (next !== current) groups++;
      this.publish(key, next);
    }
    this.emit('published', change, groups, performance.now() - started);
  }

  // ---- groups ----

  /** Brings a group up to date before its snapshot is handed out. */
  private prepare(key: string): void {
    const group = this.groups.get(key);
    if (!group) return;
    group.idleSince = undefined;
    this.flush();
    if (group.builtGeneration < this.generation || !this.cache.getSnapshot(key)) this.buildGroup(key, group);
  }

  private buildGroup(key: string, group: Group): void {
    try {
      const snapshot = this.compose(this.view, group.context, this.types, this.typeContexts, this.retired, new Map());
      this.publish(key, snapshot);
    } catch (err) {
      this.emit('error', key, err as Error);
    }
  }

  private publish(key: string, snapshot: Snapshot): void {
    const group = this.groups.get(key);
    if (group) group.builtGeneration = this.generation;
    this.cache.setSnapshot(key, snapshot);
  }

  /** Drops groups that have had no watcher for the idle grace period (or, when
   *  `force`, every idle group), with their snapshots and unused type snapshots. */
  private sweep(force = false): void {
    const now = Date.now();
    let dropped = 0;
    for (const [key, group] of this.groups) {
      if (group.idleSince === undefined || this.cache.isWatched(key)) continue;
      if (force || now - group.idleSince >= this.options.idleGraceMs) {
        this.groups.delete(key);
        this.cache.clearSnapshot(key);
        dropped++;
      }
    }
    if (dropped === 0) return;
    const inUse = new Set<string>();
    for (const group of this.groups.values()) for (const t of TRANSLATED_TYPES) inUse.add(`${t}|${dependencyKey(group.context, t)}`);
    for (const key of this.types.keys()) {
      if (!inUse.has(key)) {
        this.types.delete(key);
        this.typeContexts.delete(key);
      }
    }
  }

  close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.retireTimer);
    clearInterval(this.sweepTimer);
  }
}
