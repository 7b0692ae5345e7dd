// Wiring only: config dir -> model -> reconciler -> cache -> xDS server, plus the
// admin API. Everything with behaviour lives in the modules it imports.
import fs from 'node:fs';
import { AdminServer } from './admin/server.ts';
import { coreRoutes, type ConfigState } from './admin/core-routes.ts';
import { Metrics } from './admin/metrics.ts';
import { loadConfigDir } from './config/load.ts';
import { watchConfigDir } from './config/watch.ts';
import type { MeshModel } from './model/types.ts';
import { Reconciler } from './reconcile/reconciler.ts';
import { ChangeLog } from './reconcile/changes.ts';
import { combineCallbacks, ProxyTracker } from './reconcile/proxy-tracker.ts';
import { SnapshotCache } from './xds/cache/cache.ts';
import { hash } from './xds/cache/snapshot.ts';
import { XdsServer } from './xds/server/server.ts';
import { Registry } from './registry/registry.ts';
import { registryRoutes } from './registry/routes.ts';
import { EtcdStore } from './registry/etcd-store.ts';
import { FileStore, MemoryStore, parseStoreUrl, type RegistryStore } from './registry/store.ts';
import { SHORT_NAME, type ResourceTypeUrl } from './xds/resources/type-urls.ts';

export interface ControlPlaneOptions {
  configDir?: string;
  xdsPort: number;
  adminPort: number;
  /** Address both servers bind to. */
  address: string;
  adminToken?: string;
  /** memory (default), file:PATH or etcd://HOST:PORT,… */
  store?: string;
  log?: (line: string) => void;
}

export interface ControlPlane {
  xdsPort: number;
  adminPort: number;
  cache: SnapshotCache;
  reconciler: Reconciler;
  tracker: ProxyTracker;
  metrics: Metrics;
  config: () => ConfigState;
  registry: Registry;
  close(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache);
  const changes = new ChangeLog(reconciler);
  reconciler.on('published', (change, _groups, ms) => {
    metrics.changes.inc({ kind: change.kind });
    metrics.changeBuild.observe({ kind: change.kind }, ms / 1000);
  });
  changes.on('applied', (change, ms) => metrics.changeApplied.observe({ kind: change.kind }, ms / 1000));
  const tracker = new ProxyTracker();
  const metrics = new Metrics();
  let state: ConfigState = { files: [], errors: [] };

  reconciler.on('error', (group, err) => {
    metrics.translateErrors.inc();
    log(`error: snapshot for ${group} not built, last good kept: ${err.message}`);
  });

  const apply = (result: { model: MeshModel; errors: ConfigState['errors']; files: string[] }, initial: boolean) => {
    let errors = result.errors;
    const version = hash(JSON.stringify(result.model));
    if (errors.length === 0 && version !== state.version) {
      // Validated and translated once: applyModel publishes only if every proxy
      // group's snapshot could be built.
      try {
        reconciler.applyModel(result.model, { configVersion: version, files: result.files });
      } catch (err) {
        errors = [{ file: options.configDir ?? '', line: 0, message: `config cannot be served: ${(err as Error).message}` }];
      }
    }
    if (errors.length > 0) {
      state = { ...state, errors };
      metrics.configReloads.inc({ result: 'rejected' });
      metrics.configErrors.set(errors.length);
      log(`config ${initial ? 'load' : 'change'} rejected, ${state.version ? 'last good config keeps serving' : 'nothing served yet'}:`);
      for (const e of errors) log(`  ${e.file}:${e.line}${e.column ? `:${e.column}` : ''}: ${e.message}`);
      return;
    }
    if (version === state.version) {
      // A good change back to the served config clears the errors of a rejected one.
      state = { ...state, errors: [] };
      metrics.configErrors.set(0);
      return;
    }
    state = { version, appliedAt: new Date().toISOString(), model: result.model, files: result.files, errors: [] };
    metrics.configReloads.inc({ result: 'applied' });
    metrics.configErrors.set(0);
    log(
      `config ${version} applied: ${result.model.services.length} services, ${result.model.routes.length} routes, ` +
        `${result.model.policies.length} policies from ${result.files.length} files`,
    );
  };

  const registry = new Registry(openStore(options.store ?? 'memory', log));
  registry.on('change', () => reconciler.setEndpoints(registry.endpoints()));
  await registry.start();

  let watcher: { close(): void } | undefined;
  if (options.configDir) {
    if (!fs.existsSync(options.configDir)) throw new Error(`config dir ${options.configDir} does not exist`);
    apply(loadConfigDir(options.configDir), true);
    watcher = watchConfigDir(options.configDir, (result) => apply(result, false));
  }

  const logging = {
    onNack: (s: { node: { id?: string } }, n: { typeUrl: string; version: string; error: { message?: string } }) =>
      log(`NACK from ${s.node.id} for ${SHORT_NAME[n.typeUrl as ResourceTypeUrl]} version ${n.version}: ${n.error.message}`),
    onProtocolError: (s: { node: { id?: string } } | undefined, message: string) =>
      log(`xds: ${s?.node.id ?? 'unknown node'}: ${message}`),
  };
  const xds = new XdsServer({
    cache,
    group: reconciler.groupOf,
    callbacks: combineCallbacks(tracker.callbacks, changes.callbacks, metrics.callbacks, logging),
  });
  const xdsPort = await xds.listen(`${options.address}:${options.xdsPort}`);

  const loopback = /^(127\.|::1$|localhost$)/.test(options.address);
  if (!options.adminToken && !loopback) {
    log(`warning: no --admin-token-file and the admin API listens on ${options.address}: registry changes are refused until a token is configured`);
  }
  const admin = new AdminServer({
    token: options.adminToken,
    openMutations: loopback,
    log,
    routes: [
      ...coreRoutes({ tracker, cache, metrics, changes, registryEndpoints: () => registry.endpoints(), config: () => state, ready: () => state.version !== undefined || !options.configDir }),
      ...registryRoutes(registry, {
        fileEndpoints: () => state.model?.endpoints ?? [],
        declaredServices: () => state.model?.services.map((s) => s.name) ?? [],
      }),
    ],
  });
  const adminPort = await admin.listen(options.adminPort, options.address);
  log(`xDS (ADS, SotW and delta) on ${options.address}:${xdsPort}; admin API on http://${options.address}:${adminPort}`);

  return {
    xdsPort,
    adminPort,
    cache,
    reconciler,
    tracker,
    metrics,
    config: () => state,
    registry,
    async close() {
      watcher?.close();
      reconciler.close();
      await Promise.all([xds.close(), admin.close(), registry.close()]);
    },
  };
}

function openStore(url: string, log: (line: string) => void): RegistryStore {
  const store = parseStoreUrl(url);
  if (store.kind === 'file') return new FileStore(store.path);
  if (store.kind === 'etcd') {
    const ttl = Number(process.env.TESSERA_ETCD_LEASE_TTL ?? 10);
    return new EtcdStore({ endpoints: store.endpoints, leaseTtlSeconds: ttl, log });
  }
  return new MemoryStore();
}
