// `tessera sidecar` options: flags first, then the TESSERA_* environment the
// injector sets from the downward API, then defaults. Every mistake is reported
// at once, naming the flag (or variable) to fix.
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { parseStatsPort, parseXdsAddresses } from '../bootstrap/bootstrap.ts';
import { ALWAYS_EXCLUDED_PORTS, CaptureError, DEFAULT_CAPTURE, parseCidrList, parsePortList, type CaptureOptions } from './capture.ts';
import type { IdentityProof } from './identity.ts';
import { parseAppProbes, type ProbeHandler } from './probes.ts';

export class AgentConfigError extends Error {
  readonly code = 'TESSERA_ERR_AGENT_CONFIG';
}

export type HealthCheck = { http: string } | { tcp: true } | { grpc: true } | undefined;

export interface AgentOptions {
  service: string;
  namespace: string;
  instanceId: string;
  nodeId: string;
  /** The address other hosts reach this instance at (registered in the control plane). */
  address: string;
  appPort: number;
  /** The instance port Envoy's inbound listener takes (without capture). */
  inboundPort?: number;
  controlPlane: string;
  xds: { host: string; port: number }[];
  xdsMode: 'sotw' | 'delta';
  capture?: CaptureOptions;
  drainTimeoutMs: number;
  statusPort: number;
  probePort: number;
  adminPort: number;
  outboundPort: number;
  /** Where the explicit outbound listener listens (127.0.0.1; 0.0.0.0 to share it). */
  outboundAddress: string;
  adminToken?: string;
  register: boolean;
  healthCheck: HealthCheck;
  zone?: string;
  /** How often Envoy streams its stats to the control plane. */
  statsFlushIntervalMs?: number;
  /** The read-only Prometheus stats listener's port (on 0.0.0.0, or --address when that is
   *  a loopback address, like the status port); undefined: none. */
  statsPort?: number;
  envoy?: string;
  workDir?: string;
  probes: Map<string, ProbeHandler>;
  /** How the agent proves its identity to get a workload certificate (mTLS); none: plaintext. */
  identityProof?: IdentityProof;
  trustBundleRefreshMs: number;
  /** The control plane serves xDS over TLS (tessera control-plane --xds-tls). */
  xdsTls: boolean;
  /** Also write the certificate files here (for proxyless gRPC clients on the host). */
  certDir?: string;
}

/** Where a Kubernetes pod's projected service-account token is mounted by the injector. */
export const KUBERNETES_TOKEN_PATH = '/var/run/secrets/tokens/tessera-token';

export const SIDECAR_USAGE = `sidecar --service S --app-port A [--inbound-port P] [--namespace NS] [--instance-id ID]
          [--address IP] [--control-plane URL] [--xds HOST:PORT,…] [--xds-mode sotw|delta] [--capture]
          [--drain-timeout 10s] [--status-port 15021] [--probe-port 15020] [--admin-port 15000]
          [--outbound-port 15001] [--outbound-address 127.0.0.1] [--health-check tcp|http:/PATH|grpc|none] [--no-register]
          [--admin-token-file F] [--zone Z] [--stats-flush-interval 5s] [--stats-port 15090|none] [--envoy PATH] [--work-dir DIR]
          [--join-token-file F | --kube-token-file F] [--trust-bundle-refresh 15s] [--cert-dir DIR] [--xds-tls]
          (capture: [--inbound-ports 9080,…|*] [--exclude-inbound-ports …] [--exclude-outbound-ports …]
           [--exclude-outbound-ip-ranges CIDR,…] [--proxy-uid 1337] [--inbound-capture-port 15006])`;

export const CAPTURE_FLAGS = {
  'inbound-ports': { type: 'string' },
  'exclude-inbound-ports': { type: 'string' },
  'exclude-outbound-ports': { type: 'string' },
  'exclude-outbound-ip-ranges': { type: 'string' },
  'proxy-uid': { type: 'string' },
  'outbound-port': { type: 'string' },
  'inbound-capture-port': { type: 'string' },
} as const;

export function parseSidecarArgs(args: string[], env: NodeJS.ProcessEnv = process.env, readFile?: (f: string) => string): AgentOptions {
  const { values } = parseArgs({
    args,
    options: {
      service: { type: 'string' },
      namespace: { type: 'string' },
      'instance-id': { type: 'string' },
      address: { type: 'string' },
      'app-port': { type: 'string' },
      'inbound-port': { type: 'string' },
      'control-plane': { type: 'string' },
      xds: { type: 'string' },
      'xds-mode': { type: 'string' },
      capture: { type: 'boolean' },
      'drain-timeout': { type: 'string' },
      'status-port': { type: 'string' },
      'probe-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'outbound-address': { type: 'string' },
      'admin-token-file': { type: 'string' },
      'health-check': { type: 'string' },
      'no-register': { type: 'boolean' },
      zone: { type: 'string' },
      'stats-flush-interval': { type: 'string' },
      'stats-port': { type: 'string' },
      envoy: { type: 'string' },
      'work-dir': { type: 'string' },
      'join-token-file': { type: 'string' },
      'kube-token-file': { type: 'string' },
      'trust-bundle-refresh': { type: 'string' },
      'cert-dir': { type: 'string' },
      'xds-tls': { type: 'boolean' },
      ...CAPTURE_FLAGS,
    },
  });
  const errors: string[] = [];
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      errors.push((err as Error).message);
      return undefined;
    }
  };
  const pick = (flag: string, envName?: string): string | undefined => (values as Record<string, string | undefined>)[flag] ?? (envName ? env[envName] : undefined);
  const port = (flag: string, envName: string | undefined, fallback?: number): number | undefined => {
    const raw = pick(flag, envName);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      errors.push(`--${flag}${envName ? ` (or ${envName})` : ''} must be a port number, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return n;
  };

  const service = pick('service', 'TESSERA_SERVICE');
  if (!service) errors.push('--service (or TESSERA_SERVICE) is required');
  const namespace = pick('namespace', 'TESSERA_NAMESPACE') ?? 'default';
  const appPort = port('app-port', 'TESSERA_APP_PORT');
  if (appPort === undefined) errors.push('--app-port (or TESSERA_APP_PORT) is required');
  const inboundPort = port('inbound-port', undefined);
  if (inboundPort !== undefined && inboundPort === appPort) errors.push('--inbound-port must differ from --app-port (Envoy takes the inbound port and forwards to the app)');
  const instanceId = pick('instance-id', 'TESSERA_INSTANCE_ID') ?? `${service}-${os.hostname()}-${appPort}`.replace(/[^A-Za-z0-9._:-]/g, '-');
  const xdsMode = pick('xds-mode') ?? 'sotw';
  if (xdsMode !== 'sotw' && xdsMode !== 'delta') errors.push(`--xds-mode must be sotw or delta, got ${JSON.stringify(xdsMode)}`);
  const controlPlane = pick('control-plane', 'TESSERA_CONTROL_PLANE') ?? 'http://127.0.0.1:18080';
  const cpUrl = attempt(() => {
    const u = new URL(controlPlane);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    return u;
  });
  if (!cpUrl) errors.push(`--control-plane (or TESSERA_CONTROL_PLANE) must be an http(s) URL, got ${JSON.stringify(controlPlane)}`);
  const xds = attempt(() => parseXdsAddresses(pick('xds', 'TESSERA_XDS') ?? `${cpUrl?.hostname.replace(/^\[|\]$/g, '') ?? '127.0.0.1'}:18000`)) ?? [];
  const drainRaw = pick('drain-timeout', 'TESSERA_DRAIN_TIMEOUT') ?? '10s';
  const drainTimeoutMs = attempt(() => {
    const ms = parseDuration(drainRaw);
    if (!(ms > 0)) throw new Error();
    return ms;
  });
  if (drainTimeoutMs === undefined) errors.push(`--drain-timeout (or TESSERA_DRAIN_TIMEOUT) must be a duration like 10s, got ${JSON.stringify(drainRaw)}`);
  const flushRaw = pick('stats-flush-interval', 'TESSERA_STATS_FLUSH_INTERVAL');
  const statsFlushIntervalMs = flushRaw === undefined ? undefined : attempt(() => parseDuration(flushRaw));
  if (flushRaw !== undefined && !(statsFlushIntervalMs !== undefined && statsFlushIntervalMs >= 100 && statsFlushIntervalMs <= 3_600_000)) {
    errors.push(`--stats-flush-interval (or TESSERA_STATS_FLUSH_INTERVAL) must be a duration from 100ms to 1h, got ${JSON.stringify(flushRaw)}`);
  }
  const statsPort = parseStatsPort(pick('stats-port', 'TESSERA_STATS_PORT'), '--stats-port (or TESSERA_STATS_PORT)', errors);
  const healthCheck = attempt(() => parseHealthCheck(pick('health-check') ?? 'tcp'));
  const probes = attempt(() => parseAppProbes(env.TESSERA_APP_PROBES)) ?? new Map();
  const tokenFile = pick('admin-token-file');
  const adminToken = tokenFile
    ? attempt(() => {
        const token = (readFile ?? defaultRead)(tokenFile).trim();
        if (!token) throw new AgentConfigError(`--admin-token-file ${tokenFile} is empty`);
        return token;
      })
    : undefined;

  let capture: CaptureOptions | undefined;
  const captureFlagsUsed = Object.keys(CAPTURE_FLAGS).filter((f) => f !== 'outbound-port' && (values as Record<string, unknown>)[f] !== undefined);
  if (values.capture) {
    capture = attempt(() => captureOptions(values as Record<string, string | undefined>, env)) ?? undefined;
    // Scrapes from other hosts reach the stats listener itself, not the inbound capture.
    if (capture && statsPort !== undefined && !ALWAYS_EXCLUDED_PORTS.includes(statsPort) && !capture.excludeInboundPorts.includes(statsPort)) {
      capture.excludeInboundPorts.push(statsPort);
    }
    if (inboundPort !== undefined) errors.push('--inbound-port is for running without --capture; with capture the app keeps its port and Envoy takes its traffic on the inbound capture port');
  } else if (captureFlagsUsed.length) {
    errors.push(`${captureFlagsUsed.map((f) => `--${f}`).join(', ')} only apply with --capture`);
  }

  const joinTokenFile = pick('join-token-file', 'TESSERA_JOIN_TOKEN_FILE');
  const kubeTokenFile = pick('kube-token-file', 'TESSERA_KUBE_TOKEN_FILE');
  if (joinTokenFile && kubeTokenFile) errors.push('--join-token-file and --kube-token-file are two proofs of one identity: give one');
  const identityProof: IdentityProof | undefined = joinTokenFile ? { joinTokenFile } : kubeTokenFile ? { kubernetesTokenFile: kubeTokenFile } : undefined;
  const refreshRaw = pick('trust-bundle-refresh') ?? '15s';
  const trustBundleRefreshMs = attempt(() => {
    const ms = parseDuration(refreshRaw);
    if (ms < 500 || ms > 3600_000) throw new Error();
    return ms;
  });
  if (trustBundleRefreshMs === undefined) errors.push(`--trust-bundle-refresh must be a duration from 500ms to 60m, got ${JSON.stringify(refreshRaw)}`);
  const certDir = pick('cert-dir');
  if (certDir && !identityProof) errors.push('--cert-dir needs a certificate: give --join-token-file or --kube-token-file');
  const xdsTls = values['xds-tls'] === true || env.TESSERA_XDS_TLS === 'true';
  if (xdsTls && !identityProof) errors.push('--xds-tls checks the control plane against the mesh trust bundle, which comes with a certificate: give --join-token-file or --kube-token-file');

  const statusPort = port('status-port', undefined, 15021)!;
  const probePort = port('probe-port', undefined, 15020)!;
  const adminPort = port('admin-port', undefined, 15000)!;
  const outboundPort = port('outbound-port', undefined, 15001)!;
  if (errors.length) throw new AgentConfigError(errors.join('\n'));
  return {
    service: service!,
    namespace,
    instanceId,
    nodeId: `${instanceId}.${namespace}`,
    address: pick('address', 'TESSERA_INSTANCE_ADDRESS') ?? '127.0.0.1',
    appPort: appPort!,
    inboundPort,
    controlPlane: controlPlane.replace(/\/+$/, ''),
    xds,
    xdsMode: xdsMode as 'sotw' | 'delta',
    capture,
    drainTimeoutMs: drainTimeoutMs!,
    statusPort,
    probePort,
    adminPort,
    outboundPort,
    outboundAddress: pick('outbound-address') ?? '127.0.0.1',
    adminToken,
    register: !values['no-register'],
    healthCheck: healthCheck!,
    zone: pick('zone'),
    statsFlushIntervalMs,
    statsPort,
    envoy: pick('envoy', 'TESSERA_ENVOY'),
    workDir: pick('work-dir'),
    probes,
    identityProof,
    trustBundleRefreshMs: trustBundleRefreshMs!,
    xdsTls,
    certDir,
  };
}

function defaultRead(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

/** `500ms`, `10s`, `1m`, `1m30s` (the config files' duration form). */
export function parseDuration(value: string): number {
  const m = /^(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(value.trim());
  if (!m || value.trim() === '') throw new AgentConfigError(`not a duration: ${JSON.stringify(value)}`);
  return Number(m[1] ?? 0) * 60_000 + Number(m[2] ?? 0) * 1000 + Number(m[3] ?? 0);
}

function parseHealthCheck(value: string): HealthCheck {
  if (value === 'none') return undefined;
  if (value === 'tcp') return { tcp: true };
  if (value === 'grpc') return { grpc: true };
  if (value.startsWith('http:/')) return { http: value.slice('http:'.length) };
  throw new AgentConfigError(`--health-check must be tcp, grpc, http:/PATH or none, got ${JSON.stringify(value)}`);
}

/** The `tessera capture` flags (also accepted by `tessera sidecar --capture`). */
export function captureOptions(values: Record<string, string | undefined>, env: NodeJS.ProcessEnv = {}): CaptureOptions {
  const inboundRaw = values['inbound-ports'] ?? env.TESSERA_INBOUND_PORTS ?? '*';
  const num = (flag: string, fallback: number, max = 65535) => {
    const raw = values[flag];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > max) throw new CaptureError(`--${flag} must be a number from 0 to ${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const proxyUid = num('proxy-uid', DEFAULT_CAPTURE.proxyUid, 2 ** 31 - 1);
  return {
    inboundPorts: inboundRaw.trim() === '*' ? '*' : parsePortList(inboundRaw, '--inbound-ports (or TESSERA_INBOUND_PORTS)'),
    excludeInboundPorts: parsePortList(values['exclude-inbound-ports'], '--exclude-inbound-ports'),
    excludeOutboundPorts: parsePortList(values['exclude-outbound-ports'], '--exclude-outbound-ports'),
    excludeOutboundCidrs: parseCidrList(values['exclude-outbound-ip-ranges'], '--exclude-outbound-ip-ranges'),
    proxyUid,
    proxyGid: proxyUid,
    outboundPort: num('outbound-port', DEFAULT_CAPTURE.outboundPort),
    inboundCapturePort: num('inbound-capture-port', DEFAULT_CAPTURE.inboundCapturePort),
  };
}
