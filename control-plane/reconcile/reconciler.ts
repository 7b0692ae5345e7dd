// Model + endpoints -> translate -> snapshot cache, for every proxy group that is
// watched. A translation that fails keeps the group's last good snapshot.
import { EventEmitter } from 'node:events';
import { emptyModel, serviceKey, type Endpoint, type MeshModel, type MeshService, type ProxyContext } from '../model/types.ts';
import { translate } from '../translate/index.ts';
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

  constructor(
    private readonly cache: SnapshotCache,
    private readonly debounceMs = 5,
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
      this.cache.setSnapshot(group, Snapshot.fromResources(resources, this.encodings.encode));
    } catch (err) {
      this.emit('error', group, err as Error);
    }
  }

  close(): void {
    clearTimeout(this.timer);
  }
}
