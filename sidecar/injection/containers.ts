// The two containers the injector adds: `tessera-init` (installs the iptables capture, then
// exits) and `tessera-proxy` (the agent with Envoy). Both run the `tessera` image, whose
// entrypoint is the `tessera` bin, so `args` is a tessera command line.
import type { Container, EnvVar, Volume } from './kube-types.ts';
import { INIT_CONTAINER, PORTS, PROXY_CONTAINER } from './names.ts';
import type { AppProbe } from './probes.ts';
import type { PodSettings } from './settings.ts';

export interface ProxyOptions {
  image: string;
  controlPlane: string;
  xds: string;
  proxyUid: number;
}

/** `tessera capture …`, with NET_ADMIN + NET_RAW and nothing else. */
export function initContainer(settings: PodSettings, options: ProxyOptions): Container {
  const args = ['capture'];
  if (settings.inboundPorts === '*' || settings.inboundPorts.length > 0) {
    args.push('--inbound-ports', settings.inboundPorts === '*' ? '*' : settings.inboundPorts.join(','));
  }
  if (settings.excludeOutboundPorts.length > 0) args.push('--exclude-outbound-ports', settings.excludeOutboundPorts.join(','));
  if (settings.excludeOutboundIpRanges.length > 0) args.push('--exclude-outbound-ip-ranges', settings.excludeOutboundIpRanges.join(','));
  args.push('--proxy-uid', String(options.proxyUid), '--outbound-port', String(PORTS.outbound), '--inbound-capture-port', String(PORTS.inboundCapture));
  return {
    name: INIT_CONTAINER,
    image: options.image,
    args,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
    securityContext: {
      // iptables needs root in the pod's network namespace and these two capabilities only.
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

export const TOKEN_VOLUME = 'tessera-token';
const TOKEN_MOUNT = '/var/run/secrets/tokens';
const TOKEN_FILE = 'tessera-token';
export const TOKEN_AUDIENCE = 'tessera';

/** A token the kubelet renews and that only Tessera's control plane accepts (its audience). */
export function tokenVolume(): Volume {
  return {
    name: TOKEN_VOLUME,
    projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: TOKEN_FILE } }] },
  };
}

const fieldEnv = (name: string, fieldPath: string): EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/** `tessera sidecar`, configured entirely through the environment (the agent's env fallbacks). */
export function proxyContainer(settings: PodSettings, probes: Record<string, AppProbe>, options: ProxyOptions): Container {
  const env: EnvVar[] = [
    { name: 'TESSERA_SERVICE', value: settings.service },
    fieldEnv('TESSERA_NAMESPACE', 'metadata.namespace'),
    fieldEnv('TESSERA_INSTANCE_ID', 'metadata.name'),
    fieldEnv('TESSERA_INSTANCE_ADDRESS', 'status.podIP'),
    // The identity (spiffe://…/ns/N/sa/SA) the agent asks the CA for.
    fieldEnv('TESSERA_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    { name: 'TESSERA_CONTROL_PLANE', value: options.controlPlane },
    { name: 'TESSERA_XDS', value: options.xds },
  ];
  // The proof of identity: a service-account token for the audience `tessera`, which
  // the control plane has the API server review (TokenReview).
  env.push({ name: 'TESSERA_KUBE_TOKEN_FILE', value: `${TOKEN_MOUNT}/${TOKEN_FILE}` });
  if (settings.appPort !== undefined) env.push({ name: 'TESSERA_APP_PORT', value: String(settings.appPort) });
  if (settings.inboundPorts === '*' || settings.inboundPorts.length > 0) {
    env.push({ name: 'TESSERA_INBOUND_PORTS', value: settings.inboundPorts === '*' ? '*' : settings.inboundPorts.join(',') });
  }
  if (settings.drainTimeout) env.push({ name: 'TESSERA_DRAIN_TIMEOUT', value: settings.drainTimeout });
  if (Object.keys(probes).length > 0) env.push({ name: 'TESSERA_APP_PROBES', value: JSON.stringify(probes) });

  const ready = { httpGet: { path: '/ready', port: PORTS.status, scheme: 'HTTP' } };
  return {
    name: PROXY_CONTAINER,
    image: options.image,
    args: ['sidecar'],
    env,
    volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT, readOnly: true }],
    ports: [
      { name: 'tessera-status', containerPort: PORTS.status, protocol: 'TCP' },
      { name: 'tessera-probes', containerPort: PORTS.probes, protocol: 'TCP' },
      // Istio's name for its 15090, which ServiceMonitors and dashboards select on.
      { name: 'http-envoy-prom', containerPort: PORTS.stats, protocol: 'TCP' },
    ],
    // As a native sidecar, this probe gates the containers after it: the app starts only
    // once Envoy has its config and certificate. Up to 10 minutes, checked every second.
    startupProbe: { ...ready, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 600 },
    // Fails during drain, so the pod leaves Service endpoints before Envoy stops.
    readinessProbe: { ...ready, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
    securityContext: {
      runAsUser: options.proxyUid,
      runAsGroup: options.proxyUid,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
  };
}
