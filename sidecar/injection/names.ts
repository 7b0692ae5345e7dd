// Every label, annotation, container name and port the injector writes or reads, in one place.
import { DEFAULT_STATS_PORT, STATS_PATH } from '../bootstrap/bootstrap.ts';
import { createRequire } from 'node:module';

export const INJECT_LABEL = 'tessera.dev/inject'; // on a Namespace or a Pod template: "enabled" opts in
export const INJECT_LABEL_ENABLED = 'enabled';
export const INJECT_LABEL_DISABLED = 'disabled';

export const ANNOTATIONS = {
  inject: 'tessera.dev/inject', // "false" opts out
  status: 'tessera.dev/status', // written by the injector: what was injected, by which version
  nativeSidecar: 'tessera.dev/native-sidecar',
  service: 'tessera.dev/service',
  inboundPorts: 'tessera.dev/inbound-ports',
  excludeOutboundPorts: 'tessera.dev/exclude-outbound-ports',
  excludeOutboundIpRanges: 'tessera.dev/exclude-outbound-ip-ranges',
  drainTimeout: 'tessera.dev/drain-timeout',
} as const;

export const PROXY_CONTAINER = 'tessera-proxy';
export const INIT_CONTAINER = 'tessera-init';

/** Namespaces whose pods are never injected: the cluster's own machinery. */
export const SYSTEM_NAMESPACES: ReadonlySet<string> = new Set(['kube-system', 'kube-public', 'kube-node-lease']);

export const PORTS = {
  envoyAdmin: 15000,
  outbound: 15001,
  inboundCapture: 15006,
  probes: 15020, // the agent runs the app's rewritten probes here
  status: 15021, // the agent's /ready
  stats: DEFAULT_STATS_PORT, // Envoy's read-only Prometheus stats listener (GET /stats/prometheus only)
} as const;

/** What the stats listener serves. */
export { STATS_PATH };

/** The conventional scrape annotations (Prometheus' kubernetes_sd relabeling examples). */
export const PROMETHEUS_ANNOTATIONS = {
  scrape: 'prometheus.io/scrape',
  port: 'prometheus.io/port',
  path: 'prometheus.io/path',
} as const;

export const PROXY_UID = 1337;

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
export const TESSERA_VERSION = pkg.version;
export const DEFAULT_IMAGE = `ghcr.io/tessera-mesh/tessera:${TESSERA_VERSION}`;

// Where the example manifests (examples/kubernetes/) run the control plane.
export const DEFAULT_CONTROL_PLANE = 'http://tessera-control-plane.tessera-system.svc:18080';
export const DEFAULT_XDS = 'tessera-control-plane.tessera-system.svc:18000';
