// Prometheus metrics for the control plane, fed by xDS callbacks and the reconciler.
import client from 'prom-client';
import { SHORT_NAME, type ResourceTypeUrl } from '../xds/resources/type-urls.ts';
import type { XdsCallbacks } from '../xds/server/types.ts';

export class Metrics {
  readonly registry = new client.Registry();
  readonly connectedProxies = new client.Gauge({ name: 'tessera_xds_connected_proxies', help: 'Open xDS streams', labelNames: ['protocol'], registers: [this.registry] });
  readonly pushes = new client.Counter({ name: 'tessera_xds_pushes_total', help: 'xDS responses sent', labelNames: ['type'], registers: [this.registry] });
  readonly pushBytes = new client.Counter({ name: 'tessera_xds_push_bytes_total', help: 'Resource bytes sent in xDS responses', labelNames: ['type'], registers: [this.registry] });
  readonly acks = new client.Counter({ name: 'tessera_xds_acks_total', help: 'xDS ACKs received', labelNames: ['type'], registers: [this.registry] });
  readonly nacks = new client.Counter({ name: 'tessera_xds_nacks_total', help: 'xDS NACKs received', labelNames: ['type'], registers: [this.registry] });
  readonly pushToAck = new client.Histogram({
    name: 'tessera_xds_push_to_ack_seconds',
    help: 'Time from an xDS push to its ACK',
    labelNames: ['type'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly configReloads = new client.Counter({ name: 'tessera_config_reloads_total', help: 'Config changes seen', labelNames: ['result'], registers: [this.registry] });
  readonly configErrors = new client.Gauge({ name: 'tessera_config_errors', help: 'Errors blocking the newest config change', registers: [this.registry] });
  readonly translateErrors = new client.Counter({ name: 'tessera_translate_errors_total', help: 'Snapshots that failed to build', registers: [this.registry] });
  readonly changes = new client.Counter({ name: 'tessera_changes_total', help: 'Changes published to proxies', labelNames: ['kind'], registers: [this.registry] });
  readonly changeBuild = new client.Histogram({
    name: 'tessera_change_build_seconds',
    help: 'Time to build and publish the snapshots of a change',
    labelNames: ['kind'],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly changeApplied = new client.Histogram({
    name: 'tessera_change_applied_seconds',
    help: 'Time from publishing a change until every proxy it affects ACKed it',
    labelNames: ['kind'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly changeProxies = new client.Gauge({
    name: 'tessera_change_proxies',
    help: 'Proxies the latest change affects, by their answer',
    labelNames: ['status'],
    registers: [this.registry],
  });

  readonly certificatesIssued = new client.Counter({
    name: 'tessera_certificates_issued_total',
    help: 'Workload certificates issued, by the kind of proof presented',
    labelNames: ['proof'],
    registers: [this.registry],
  });
  readonly workloadCertificateExpiry = new client.Gauge({
    name: 'tessera_workload_certificate_expiry_timestamp_seconds',
    help: 'When the newest certificate issued to each workload identity expires',
    labelNames: ['spiffe_id'],
    registers: [this.registry],
  });

  /** The CA's own certificates, read at scrape time. */
  watchAuthorities(read: () => { kind: string; serial: string; notAfter: Date }[]): void {
    new client.Gauge({
      name: 'tessera_ca_certificate_expiry_timestamp_seconds',
      help: 'When each root and intermediate certificate of the mesh CA expires',
      labelNames: ['kind', 'serial'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const a of read()) this.set({ kind: a.kind, serial: a.serial }, a.notAfter.getTime() / 1000);
      },
    });
  }

  readonly telemetryServices = new client.Gauge({
    name: 'tessera_telemetry_services',
    help: 'Services whose sidecars the active Telemetry config gives access logs or tracing',
    labelNames: ['feature'],
    registers: [this.registry],
  });
  readonly telemetryMeshWide = new client.Gauge({
    name: 'tessera_telemetry_mesh_wide',
    help: 'Whether the mesh-wide Telemetry (also what outbound-only sidecars get) turns a feature on (1) or not (0)',
    labelNames: ['feature'],
    registers: [this.registry],
  });

  /** The Telemetry figures of the config just applied. */
  setTelemetry(t: { services: { accessLog: number; tracing: number }; meshWide: { accessLog: boolean; tracing: boolean } }): void {
    this.telemetryServices.set({ feature: 'access_log' }, t.services.accessLog);
    this.telemetryServices.set({ feature: 'tracing' }, t.services.tracing);
    this.telemetryMeshWide.set({ feature: 'access_log' }, t.meshWide.accessLog ? 1 : 0);
    this.telemetryMeshWide.set({ feature: 'tracing' }, t.meshWide.tracing ? 1 : 0);
  }
  readonly gitFetches = new client.Counter({
    name: 'tessera_config_git_fetches_total',
    help: 'Fetches of the git config source, by result',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly gitRevision = new client.Gauge({
    name: 'tessera_config_git_revision_info',
    help: 'The git revision served (state=applied) and the newest fetched (state=fetched); always 1',
    labelNames: ['state', 'revision'],
    registers: [this.registry],
  });
  readonly gitLastFetch = new client.Gauge({
    name: 'tessera_config_git_last_fetch_timestamp_seconds',
    help: 'When the git config source was last fetched successfully',
    registers: [this.registry],
  });
  readonly gitFailures = new client.Gauge({
    name: 'tessera_config_git_consecutive_failures',
    help: 'Failed fetches of the git config source since the last good one',
    registers: [this.registry],
  });
  readonly gitSuspended = new client.Gauge({ name: 'tessera_config_git_suspended', help: '1 while the git config source is suspended', registers: [this.registry] });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'tessera_process_' });
  }

  /** After each fetch attempt of the git config source. */
  observeGitSource(ok: boolean | undefined, status: { fetchedRevision?: string; appliedRevision?: string; fetchedAt?: string; consecutiveFailures: number; suspended: boolean }): void {
    if (ok !== undefined) this.gitFetches.inc({ result: ok ? 'ok' : 'failed' });
    this.gitRevision.reset();
    if (status.appliedRevision) this.gitRevision.set({ state: 'applied', revision: status.appliedRevision }, 1);
    if (status.fetchedRevision) this.gitRevision.set({ state: 'fetched', revision: status.fetchedRevision }, 1);
    if (status.fetchedAt) this.gitLastFetch.set(Date.parse(status.fetchedAt) / 1000);
    this.gitFailures.set(status.consecutiveFailures);
    this.gitSuspended.set(status.suspended ? 1 : 0);
  }

  readonly callbacks: XdsCallbacks = {
    onStreamOpen: (s) => this.connectedProxies.inc({ protocol: s.protocol }),
    onStreamClose: (s) => this.connectedProxies.dec({ protocol: s.protocol }),
    onPush: (_s, p) => {
      this.pushes.inc({ type: short(p.typeUrl) });
      this.pushBytes.inc({ type: short(p.typeUrl) }, p.bytes);
    },
    onAck: (_s, a) => {
      this.acks.inc({ type: short(a.typeUrl) });
      if (a.latencyMs !== undefined) this.pushToAck.observe({ type: short(a.typeUrl) }, a.latencyMs / 1000);
    },
    onNack: (_s, n) => this.nacks.inc({ type: short(n.typeUrl) }),
  };
}

const short = (typeUrl: string) => SHORT_NAME[typeUrl as ResourceTypeUrl] ?? 'unknown';
