// Wiring only: config dir -> model -> reconciler -> cache -> xDS server, plus the
// admin API. Everything with behaviour lives in the modules it imports.
import fs from 'node:fs';
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import path from 'node:path';
import { AdminServer } from './admin/server.ts';
import { coreRoutes, type ConfigState } from './admin/core-routes.ts';
import { LiveEvents } from './admin/live-events.ts';
import { Metrics } from './admin/metrics.ts';
import { NackLog, truncate } from './admin/nack-log.ts';
import { uiRoutes } from './admin/ui-routes.ts';
import { ConfigLoader } from './config/load-async.ts';
import { DEFAULT_LIMITS, loadConfigDir } from './config/load.ts';
import { fingerprint, watchConfigDir } from './config/watch.ts';
import { DEFAULT_TRUST_DOMAIN, type MeshModel } from './model/types.ts';
import { telemetryInEffect } from './model/telemetry.ts';
import { type GitLoadResult, type SteerableConfigSource, watchGitSource } from './config/git-source.ts';
import { describeGitSource, type GitSourceSpec } from './config/git-url.ts';
import { configSourceRoutes } from './admin/config-source-routes.ts';
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
import { CertificateAuthority } from './identity/ca.ts';
import { JoinTokens } from './identity/join-tokens.ts';
import { DEFAULT_CERTIFICATE_LIFETIME_MS, IdentityService, identityRoutes } from './identity/service.ts';
import { TokenReviewer, type KubernetesReviewOptions } from './identity/token-review.ts';
import { MetricsIngest } from './telemetry/metrics-service.ts';
import { registerTrafficMetrics, trafficRoutes } from './telemetry/routes.ts';
import { TrafficStore } from './telemetry/traffic.ts';
import { CanaryController } from './delivery/canary.ts';
import { canaryRoutes } from './delivery/routes.ts';
import { ComparatorServer, registerParallelRunMetrics, type ComparatorServerLimits, type ParallelRunComparator } from './delivery/parallel-run.ts';
import { comparatorInstances, advertisedAddress, mirrorAuthorized, mirrorNeedsMtls } from './delivery/parallel-run-wiring.ts';
import { ComparatorIdentity } from './delivery/comparator-identity.ts';
import { proxyContextOf } from './reconcile/proxy-context.ts';

export interface ControlPlaneOptions {
  configDir?: string;
  /** Desired state from a git branch instead of a dir (`--config git+URL#BRANCH:PATH`). */
  git?: { source: GitSourceSpec; intervalMs: number; timeoutMs?: number; cacheDir?: string };
  xdsPort: number;
  adminPort: number;
  /** Address both servers bind to. */
  address: string;
  adminToken?: string;
  /** memory (default), file:PATH or etcd://HOST:PORT,… */
  store?: string;
  /** The mesh CA: generated into `dir` (default ~/.local/state/tessera/ca) unless a
   *  CA certificate and key are given. */
  ca?: { dir?: string; certFile?: string; keyFile?: string; rotationGraceMs?: number };
  /** Serve xDS over TLS with a certificate of the mesh CA for these DNS names and IPs
   *  (and the SPIFFE ID of XDS_IDENTITY, which agents check). */
  xdsTls?: { names: string[] };
  /** Review Kubernetes service-account tokens as proof of identity. */
  kubernetes?: KubernetesReviewOptions;
  /** The comparator of ParallelRun Canaries (`--comparator-port`), bound on `address`;
   *  sidecars reach it at `advertise` (default: `address`, or this host's first
   *  non-loopback IPv4 when that is a wildcard). */
  comparator?: { port: number; advertise?: string; limits?: Partial<ComparatorServerLimits> };
  log?: (line: string) => void;
}

/** Who the control plane is to the agents that verify its xDS port (--xds-tls). */
export const XDS_IDENTITY = { namespace: 'tessera-system', serviceAccount: 'tessera-control-plane' };
export const defaultCaDir = () => path.join(process.env.XDG_STATE_HOME ?? path.join(os.homedir(), '.local/state'), 'tessera/ca');

export interface ControlPlane {
  xdsPort: number;
  adminPort: number;
  cache: SnapshotCache;
  reconciler: Reconciler;
  tracker: ProxyTracker;
  metrics: Metrics;
  config: () => ConfigState;
  registry: Registry;
  ca: CertificateAuthority;
  joinTokens: JoinTokens;
  /** The dashboard's live feed (GET /api/v1/events). */
  events: LiveEvents;
  traffic: TrafficStore;
  canaries: CanaryController;
  /** The ParallelRun comparator, with --comparator-port. */
  comparator?: { server: ComparatorServer; port: number };
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
  // What the dashboard is told to fetch again; every source below only marks a topic.
  const events = new LiveEvents();
  reconciler.on('published', () => events.notify('changes', 'proxies', 'services'));
  changes.on('applied', () => events.notify('changes'));
  const liveFeed = {
    onStreamOpen: () => events.notify('proxies', 'changes'),
    onStreamClose: () => events.notify('proxies', 'changes'),
    onPush: () => events.notify('proxies'),
    onAck: () => events.notify('proxies', 'changes'),
    onNack: () => events.notify('proxies', 'changes'),
  };
  let state: ConfigState = { files: [], errors: [] };
  const setState = (next: ConfigState) => {
    state = next;
    events.notify('config', 'services');
  };

  reconciler.on('error', (group, err) => {
    metrics.translateErrors.inc();
    log(`error: snapshot for ${group} not built, last good kept: ${err.message}`);
  });

  type Loaded = { model: MeshModel; errors: ConfigState['errors']; files: string[]; revision?: string };
  /** True when what `result` says is what is served now (applied, or already served). */
  const apply = (result: Loaded, initial: boolean): boolean => {
    try {
      return applyConfig(result, initial);
    } catch (err) {
      // Nothing a config file says may take the process down; the last good config serves.
      log(`error: config ${initial ? 'load' : 'change'} not applied, last good config keeps serving: ${(err as Error).stack}`);
      return false;
    }
  };
  const applyConfig = (result: Loaded, initial: boolean): boolean => {
    const what = `config ${initial ? 'load' : 'change'}${result.revision ? ` (revision ${result.revision})` : ''}`;
    let errors = result.errors;
    const version = hash(JSON.stringify(result.model));
    if (errors.length === 0 && version !== state.version) {
      // Validated and translated once: applyModel publishes only if every proxy
      // group's snapshot could be built.
      try {
        // The revision goes into the changes feed, so `tessera status` tells which commit reached which proxies.
        reconciler.applyModel(result.model, { configVersion: version, files: result.files, ...(result.revision ? { revision: result.revision } : {}) });
      } catch (err) {
        const file = options.configDir ?? (options.git ? describeGitSource(options.git.source) : '');
        errors = [{ file, line: 0, message: `config cannot be served: ${(err as Error).message}`, revision: result.revision }];
      }
    }
    if (errors.length > 0) {
      setState({ ...state, errors });
      metrics.configReloads.inc({ result: 'rejected' });
      metrics.configErrors.set(errors.length);
      log(`${what} rejected, ${state.version ? `last good config${state.revision ? ` (revision ${state.revision})` : ''} keeps serving` : 'nothing served yet'}:`);
      for (const e of errors) log(`  ${e.file}:${e.line}${e.column ? `:${e.column}` : ''}: ${e.message}`);
      return false;
    }
    if (version === state.version) {
      // Back to what is already served (e.g. a broken edit undone): nothing blocks any more.
      if (state.errors.length > 0) log(`config ${version} is served again; the errors are gone`);
      setState({ ...state, errors: [], revision: result.revision ?? state.revision });
      metrics.configErrors.set(0);
      return true;
    }
    setState({ version, appliedAt: new Date().toISOString(), model: result.model, files: result.files, errors: [], revision: result.revision });
    canaries.sync(result.model);
    metrics.configReloads.inc({ result: 'applied' });
    metrics.configErrors.set(0);
    metrics.setTelemetry(telemetryInEffect(result.model));
    log(
      `config ${version}${result.revision ? ` (revision ${result.revision})` : ''} applied: ${result.model.services.length} services, ` +
        `${result.model.routes.length} routes, ${result.model.policies.length} policies from ${result.files.length} files`,
    );
    return true;
  };

  const registry = new Registry(openStore(options.store ?? 'memory', log));
  registry.on('change', () => {
    reconciler.setEndpoints(registry.endpoints());
    events.notify('services');
  });
  await registry.start();

  // What the sidecars report (envoy.stat_sinks.metrics_service, served beside ADS
  // below), and the Canary controller that moves traffic by it. Its state comes from
  // the store before the first config is served, so a restart resumes each Canary.
  const traffic = new TrafficStore();
  // ParallelRun: the comparator the sidecars mirror to, on its own port.
  let comparator: { server: ComparatorServer; port: number } | undefined;
  let parallelRuns: ParallelRunComparator | undefined;
  // Its mesh certificate comes once the CA is open (below).
  let comparatorIdentity: ComparatorIdentity | undefined;
  if (options.comparator) {
    const server = new ComparatorServer({
      instances: (ref, port) => comparatorInstances(state.model, [...(state.model?.endpoints ?? []), ...registry.endpoints()], ref, port),
      log,
      limits: options.comparator.limits,
      tls: () => comparatorIdentity?.current(),
      mtlsRequired: (run) => mirrorNeedsMtls(state.model, run),
      authorize: (ref, request) => mirrorAuthorized(state.model, ref, request),
      trustDomain: () => state.model?.meshConfig?.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    });
    const port = await server.listen(options.comparator.port, options.address);
    const address = options.comparator.advertise ?? advertisedAddress(options.address);
    comparator = { server, port };
    parallelRuns = { setRuns: (t, r) => server.setRuns(t, r), status: (k) => server.status(k), address: { address, port } };
    registerParallelRunMetrics(metrics.registry, server);
    log(`comparator (ParallelRun) on ${options.address}:${port}; sidecars mirror to ${address}:${port}`);
  }
  const canaries = new CanaryController({
    traffic,
    publish: (note) => reconciler.publishOverlay(note),
    store: registry.stateStore,
    log,
    parallelRuns,
  });
  await canaries.load();
  reconciler.setOverlay(canaries.overlay);

  let watcher: { close(): void } | undefined;
  let gitSource: SteerableConfigSource | undefined;
  // Reloads parse YAML in a worker thread, so a big or hostile file cannot freeze
  // xDS, the admin API or the health checks (load-async.ts). The first load runs
  // here: nothing is served yet, and starting needs no worker to warm up first.
  const loader = new ConfigLoader();
  if (options.configDir) {
    if (!fs.existsSync(options.configDir)) throw new ConfigDirError(`config dir ${options.configDir} does not exist`);
    const before = fingerprint(options.configDir);
    const first = loadConfigDir(options.configDir, DEFAULT_LIMITS);
    apply(first, true);
    watcher = watchConfigDir(options.configDir, (result) => apply(result, false), {
      load: (dir, limits) => loader.load(dir, limits),
      initial: { digest: first.digest, fingerprint: before },
      onError: log,
    });
  } else if (options.git) {
    // Not awaited: an unreachable repository must not keep the control plane from
    // starting; /readyz says why nothing is served yet.
    gitSource = watchGitSource(options.git.source, (result: GitLoadResult) => apply(result, state.version === undefined), {
      intervalMs: options.git.intervalMs,
      timeoutMs: options.git.timeoutMs,
      cacheDir: options.git.cacheDir,
      load: (dir, limits) => loader.load(dir, limits),
      log,
      onFetch: (ok, status) => metrics.observeGitSource(ok, status),
    });
  }

  const caDir = options.ca?.dir ?? defaultCaDir();
  const meshConfig = () => state.model?.meshConfig;
  const given = options.ca?.certFile && options.ca.keyFile ? { certFile: options.ca.certFile, keyFile: options.ca.keyFile } : undefined;
  const ca = await CertificateAuthority.open({
    dir: caDir,
    trustDomain: meshConfig()?.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    given,
    rotationGraceMs: options.ca?.rotationGraceMs,
    maxLeafLifetimeMs: () => meshConfig()?.certificateLifetimeMs ?? DEFAULT_CERTIFICATE_LIFETIME_MS,
  });
  const joinTokens = new JoinTokens(caDir);
  const kubernetes = options.kubernetes ? new TokenReviewer(options.kubernetes) : undefined;
  const identity = new IdentityService({
    ca,
    joinTokens,
    kubernetes,
    lifetimeMs: () => meshConfig()?.certificateLifetimeMs ?? DEFAULT_CERTIFICATE_LIFETIME_MS,
    trustDomain: () => meshConfig()?.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    log,
    onIssued: (r) => {
      metrics.certificatesIssued.inc({ proof: r.proof });
      metrics.workloadCertificateExpiry.set({ spiffe_id: r.spiffeId }, Date.parse(r.notAfter) / 1000);
    },
  });
  metrics.watchAuthorities(() => ca.authorities());
  if (comparator) {
    const identity = new ComparatorIdentity(ca, () => meshConfig()?.certificateLifetimeMs ?? DEFAULT_CERTIFICATE_LIFETIME_MS, log);
    await identity.start();
    comparatorIdentity = identity;
    log(`comparator speaks mTLS as ${identity.current()?.spiffeId}: it takes mirrors over mTLS from sidecars with a mesh certificate (plaintext only for runs with no STRICT Service) and calls instances whose sidecar has one`);
  }
  const warnExpiring = () => {
    for (const a of ca.authorities()) {
      const days = (a.notAfter.getTime() - Date.now()) / 86_400_000;
      if (days < 30 && !a.retiring) log(`warning: the mesh ${a.kind} certificate ${a.serial} expires in ${days.toFixed(1)} days (${a.notAfter.toISOString()}): rotate it (POST /api/v1/ca/rotate)`);
    }
  };
  warnExpiring();
  const expiryTimer = setInterval(warnExpiring, 3600_000);
  expiryTimer.unref();

  const nackLog = new NackLog(log);
  const logging = {
    onNack: (s: { node: { id?: string } }, n: { typeUrl: string; version: string; error: { message?: string } }) =>
      nackLog.nack(s.node.id ?? 'unknown node', SHORT_NAME[n.typeUrl as ResourceTypeUrl] ?? 'unknown type', n.version, n.error.message ?? ''),
    onProtocolError: (s: { node: { id?: string } } | undefined, message: string) =>
      log(`xds: ${truncate(s?.node.id ?? 'unknown node', 200)}: ${truncate(message, 500)}`),
  };
  const xds = new XdsServer({
    cache,
    group: reconciler.groupOf,
    callbacks: combineCallbacks(tracker.callbacks, changes.callbacks, metrics.callbacks, logging, liveFeed),
  });
  let xdsCredentials: grpc.ServerCredentials | undefined;
  if (options.xdsTls) {
    // A year, capped by the intermediate; a restart issues a new one.
    const serving = await ca.issueServing(XDS_IDENTITY, options.xdsTls.names, 365 * 24 * 3600_000);
    xdsCredentials = grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(serving.certificateChain), private_key: Buffer.from(serving.keyPem) }], false);
    log(`xDS over TLS as ${serving.spiffeId} (${options.xdsTls.names.join(', ')}), valid until ${serving.notAfter.toISOString()}`);
  }
  // Sidecars stream their stats beside ADS (envoy.stat_sinks.metrics_service).
  const ingest = new MetricsIngest({ store: traffic, identify: sourceOf });
  ingest.addTo(xds.grpc);
  registerTrafficMetrics(metrics.registry, traffic, ingest);
  const trafficSweep = setInterval(() => traffic.sweep(Date.now()), 10_000);
  trafficSweep.unref();
  const xdsPort = await xds.listen(`${options.address}:${options.xdsPort}`, xdsCredentials);

  const loopback = /^(127\.|::1$|localhost$)/.test(options.address);
  if (!options.adminToken && !loopback) {
    log(`warning: no --admin-token-file and the admin API listens on ${options.address}: registry changes are refused until a token is configured`);
  }
  const admin = new AdminServer({
    token: options.adminToken,
    openMutations: loopback,
    log,
    routes: [
      ...coreRoutes({
        tracker,
        cache,
        metrics,
        changes,
        registryEndpoints: () => registry.endpoints(),
        config: () => state,
        configSource: () => (gitSource ? gitSource.status() : options.configDir ? { kind: 'dir', path: options.configDir } : undefined),
        notReady: () => {
          const reasons: string[] = [];
          if (options.configDir && state.version === undefined) {
            reasons.push(`no valid config loaded yet from ${options.configDir}${state.errors.length ? ` (${state.errors.length} errors, see /api/v1/config)` : ''}`);
          }
          if (gitSource && state.version === undefined) {
            const error = gitSource.status().lastError;
            reasons.push(`no revision applied yet from ${describeGitSource(options.git!.source)}${error ? `: ${error.message}` : ' (first fetch under way)'}`);
          }
          const store = registry.storeStatus();
          if (!store.ok) reasons.push(`registry store: ${store.reason}`);
          return reasons;
        },
      }),
      ...identityRoutes(identity, { ca, joinTokens, log }),
      ...trafficRoutes(traffic),
      ...canaryRoutes(canaries),
      ...configSourceRoutes(() => gitSource),
      ...registryRoutes(registry, {
        log,
        fileEndpoints: () => state.model?.endpoints ?? [],
        declaredServices: () => state.model?.services.map((s) => s.name) ?? [],
      }),
      ...uiRoutes(events),
    ],
  });
  const adminPort = await admin.listen(options.adminPort, options.address);
  // Warmed once serving, so it does not slow the start down.
  if (options.configDir || options.git) loader.warm();
  log(`xDS (ADS, SotW and delta) on ${options.address}:${xdsPort}; admin API on http://${options.address}:${adminPort} (dashboard: /ui/)`);

  return {
    xdsPort,
    adminPort,
    cache,
    reconciler,
    tracker,
    metrics,
    config: () => state,
    registry,
    ca,
    joinTokens,
    events,
    traffic,
    canaries,
    comparator,
    async close() {
      clearInterval(expiryTimer);
      clearInterval(trafficSweep);
      canaries.close();
      comparatorIdentity?.close();
      watcher?.close();
      events.close();
      gitSource?.close();
      loader.close();
      reconciler.close();
      await Promise.all([xds.close(), admin.close(), registry.close(), kubernetes?.close(), comparator?.server.close()]);
    },
  };
}

/** Who sent a metrics stream: the service its node metadata names (as for xDS),
 *  else the node's cluster. */
function sourceOf(node: Parameters<typeof proxyContextOf>[0]): { service: string; namespace: string } {
  try {
    const context = proxyContextOf(node);
    if (context.kind === 'sidecar') return { service: context.service ?? 'unknown', namespace: context.namespace };
  } catch {
    /* metadata we do not understand: fall back to the cluster */
  }
  return { service: node.cluster || 'unknown', namespace: 'default' };
}

export class ConfigDirError extends Error {
  readonly code = 'TESSERA_ERR_CONFIG_DIR';
}

function openStore(url: string, log: (line: string) => void): RegistryStore {
  const store = parseStoreUrl(url);
  if (store.kind === 'file') return new FileStore(store.path, log);
  if (store.kind === 'etcd') {
    const ttl = Number(process.env.TESSERA_ETCD_LEASE_TTL ?? 10);
    return new EtcdStore({ endpoints: store.endpoints, leaseTtlSeconds: ttl, log });
  }
  return new MemoryStore();
}
