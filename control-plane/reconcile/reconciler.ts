// Model + endpoints -> translate -> snapshot cache, for every proxy group that is
// watched. A translation that fails keeps the group's last good snapshot.
import { EventEmitter } from 'node:events';
import { emptyModel, serviceKey, type Endpoint, type MeshModel, type MeshService, type ProxyContext } from '../model/types.ts';
import { translate, type ResourceSet } from '../translate/index.ts';
import { references } from '../xds/resources/references.ts';
import { TypeUrl } from '../xds/resources/type-urls.ts';
import type { SnapshotCache } from '../xds/cache/cache.ts';
import { EncodeCache, Snapshot } from '../xds/cache/snapshot.ts';
import type { XdsNode } from '../xds/server/types.ts';
import { groupKey, proxyContextOf } from './proxy-context.ts';

export interface ReconcilerEvents {
  /** A group got a new snapshot (count of groups rebuilt, time taken). */
  rebuilt: [groups: number, ms: number];
  error: [group: string, error: Error];
}

/** Contexts every config is tried against before it is accepted. */
const PROBE_CONTEXTS: ProxyContext[] = [
  { kind: 'proxyless' },
  { kind: 'sidecar', namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 } },
];

export class Reconciler extends EventEmitter<ReconcilerEvents> {
  private model: MeshModel = emptyModel();
  private endpoints: Endpoint[] = [];
  private readonly contexts = new Map<string, ProxyContext>();
  private timer?: NodeJS.Timeout;
  private readonly encodings = new EncodeCache();
  private readonly retiredAt = new Map<string, Map<string, number>>();
  private retireTimer?: NodeJS.Timeout;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly debounceMs = 5,
    /** How long a cluster removed from the config is still served. */
    private readonly retireGraceMs = 5000,
  ) {
    super();
    cache.on('demand', (group) => this.build(group));
  }

  /** The NodeGrouper for the xDS server. */
  readonly groupOf = (node: XdsNode): string => {
    const context = proxyContextOf(node);
    const key = groupKey(context);
    this.contexts.set(key, context);
    return key;
  };

  /** Translates the candidate model for every watched group (and a few probes)
   *  without publishing; throws the first failure, so a config that cannot be
   *  served is refused before anything reaches a proxy. */
  check(model: MeshModel): void {
    const groups = new Map(PROBE_CONTEXTS.map((c) => [groupKey(c), c]));
    for (const group of this.cache.watchedGroups()) {
      const context = this.contexts.get(group);
      if (context) groups.set(group, context);
    }
    for (const context of groups.values()) {
      Snapshot.fromResources(
        translate({ model: this.servedModel(model), endpoints: this.endpointsFor(model), proxy: context }),
        this.encodings.encode,
      );
    }
  }

  setModel(model: MeshModel): void {
    this.model = model;
    this.schedule();
  }

  setEndpoints(endpoints: Endpoint[]): void {
    this.endpoints = endpoints;
    this.schedule();
  }

  contextOf(group: string): ProxyContext | undefined {
    return this.contexts.get(group);
  }

  private endpointsFor(model: MeshModel): Endpoint[] {
    return [...model.endpoints, ...this.endpoints];
  }

  /** The model as served: registering an instance of a service no config file
   *  declares creates that service (as in Consul), its port taken from the instance. */
  private servedModel(model: MeshModel): MeshModel {
    const declared = new Set(model.services.map((s) => serviceKey(s.name, s.namespace)));
    const implied = new Map<string, MeshService>();
    for (const e of this.endpoints) {
      const key = serviceKey(e.service, e.namespace);
      if (declared.has(key) || implied.has(key)) continue;
      implied.set(key, {
        name: e.service,
        namespace: e.namespace,
        ports: [{ name: 'http', port: e.port, targetPort: e.port, appProtocol: 'http' }],
      });
    }
    if (implied.size === 0) return model;
    return { ...model, services: [...model.services, ...[...implied.values()].sort((a, b) => a.name.localeCompare(b.name))] };
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.rebuildAll();
    }, this.debounceMs);
  }

  /** Rebuilds now, e.g. in tests or before shutdown. */
  rebuildAll(): void {
    const started = performance.now();
    const groups = this.cache.watchedGroups();
    for (const group of groups) this.build(group);
    this.encodings.nextGeneration();
    this.emit('rebuilt', groups.length, performance.now() - started);
  }

  private build(group: string): void {
    const context = this.contexts.get(group);
    if (!context) return;
    try {
      const resources = translate({ model: this.servedModel(this.model), endpoints: this.endpointsFor(this.model), proxy: context });
      this.keepRetiredClusters(group, resources);
      this.cache.setSnapshot(group, Snapshot.fromResources(resources, this.encodings.encode));
    } catch (err) {
      this.emit('error', group, err as Error);
    }
  }

  /** Make-before-break: a cluster that leaves the config stays served (with its
   *  endpoints) for a grace period, so proxies first move their routes off it and
   *  never route to a cluster they no longer have. */
  private keepRetiredClusters(group: string, resources: ResourceSet): void {
    const previous = this.cache.getSnapshot(group);
    if (!previous) return;
    const now = Date.now();
    const clusters = (resources[TypeUrl.Cluster] ??= []);
    const assignments = (resources[TypeUrl.ClusterLoadAssignment] ??= []);
    const current = new Set(clusters.map((c) => c.name));
    const retired = this.retiredAt.get(group) ?? new Map<string, number>();
    for (const name of current) retired.delete(name);
    const oldAssignments = previous.get(TypeUrl.ClusterLoadAssignment).resources;
    for (const old of previous.get(TypeUrl.Cluster).resources.values()) {
      if (current.has(old.name)) continue;
      const since = retired.get(old.name) ?? now;
      if (now - since >= this.retireGraceMs) {
        retired.delete(old.name);
        continue;
      }
      retired.set(old.name, since);
      clusters.push({ name: old.name, resource: old.object });
      const edsName = references(TypeUrl.Cluster, old.object)[0]?.name;
      const assignment = edsName ? oldAssignments.get(edsName) : undefined;
      if (assignment && !assignments.some((a) => a.name === assignment.name)) assignments.push({ name: assignment.name, resource: assignment.object });
    }
    this.retiredAt.set(group, retired);
    if (retired.size > 0 && !this.retireTimer) {
      this.retireTimer = setTimeout(() => {
        this.retireTimer = undefined;
        this.rebuildAll();
      }, this.retireGraceMs + 50);
      this.retireTimer.unref();
    }
  }

  close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.retireTimer);
  }
}
