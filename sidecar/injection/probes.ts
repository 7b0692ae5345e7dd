// Rewrites the app's HTTP/TCP/gRPC probes to go through the agent (port 15020), because
// under STRICT mTLS the kubelet's plain-text probes would be refused by Envoy. The original
// handlers travel to the agent in TESSERA_APP_PROBES, which runs them against 127.0.0.1.
import type { Problem } from './errors.ts';
import type { Container, PodTemplate, Probe } from './kube-types.ts';
import { PORTS } from './names.ts';

/** What the agent runs for one rewritten path (the brief's TESSERA_APP_PROBES contract). */
export type AppProbe =
  | { httpGet: { path: string; port: number; scheme?: string; httpHeaders?: { name: string; value: string }[] } }
  | { tcpSocket: { port: number } }
  | { grpc: { port: number; service?: string } };

const PROBE_FIELDS = [
  ['livenessProbe', 'livez'],
  ['readinessProbe', 'readyz'],
  ['startupProbe', 'startupz'],
] as const;

export const appHealthPath = (container: string, kind: string) => `/app-health/${container}/${kind}`;

/** Rewrites the probes of every app container of `template` in place; returns the originals
 *  keyed by their new path. exec probes stay as they are (they never cross the network). */
export function rewriteProbes(template: PodTemplate, problems: Problem[]): Record<string, AppProbe> {
  const originals: Record<string, AppProbe> = {};
  template.spec.containers.forEach((container, i) => {
    for (const [field, kind] of PROBE_FIELDS) {
      const probe = container[field];
      if (!probe) continue;
      const where = `spec.containers[${i}].${field}`;
      const original = originalHandler(probe, container, where, problems);
      if (!original) continue;
      const path = appHealthPath(container.name, kind);
      originals[path] = original;
      const { httpGet: _h, tcpSocket: _t, grpc: _g, ...timing } = probe;
      container[field] = { httpGet: { path, port: PORTS.probes, scheme: 'HTTP' }, ...timing };
    }
  });
  return originals;
}

function originalHandler(probe: Probe, container: Container, where: string, problems: Problem[]): AppProbe | undefined {
  if (probe.httpGet) {
    const { path, port, host, scheme, httpHeaders } = probe.httpGet;
    // A probe with its own host does not target this pod: it never meets the sidecar.
    if (host) return undefined;
    const resolved = resolvePort(port, container, `${where}.httpGet.port`, problems);
    if (resolved === undefined) return undefined;
    return {
      httpGet: {
        path: path ?? '/',
        port: resolved,
        ...(scheme && scheme !== 'HTTP' ? { scheme } : {}),
        ...(httpHeaders?.length ? { httpHeaders } : {}),
      },
    };
  }
  if (probe.tcpSocket) {
    if (probe.tcpSocket.host) return undefined;
    const resolved = resolvePort(probe.tcpSocket.port, container, `${where}.tcpSocket.port`, problems);
    return resolved === undefined ? undefined : { tcpSocket: { port: resolved } };
  }
  if (probe.grpc) {
    const { port, service } = probe.grpc;
    return { grpc: { port, ...(service ? { service } : {}) } };
  }
  return undefined;
}

/** The agent dials 127.0.0.1:PORT, so a named port must become its number here. */
function resolvePort(port: number | string, container: Container, where: string, problems: Problem[]): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = container.ports?.find((p) => p.name === port);
  if (!named) {
    problems.push({ path: where, message: `container ${JSON.stringify(container.name)} has no port named ${JSON.stringify(port)}` });
    return undefined;
  }
  return named.containerPort;
}
