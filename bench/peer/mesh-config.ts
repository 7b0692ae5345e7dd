// The mesh both servers serve: N services x M endpoints, as a Tessera config dir
// (Services in services.yaml, one EndpointSlice per service in endpoints.yaml) and,
// for the Go peer, as flags. Addresses match on both sides.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export const serviceName = (s: number) => `svc-${s}`;
export const ENDPOINT_PORT = 8080;

/** The initial addresses of service `s`: 10.0.(s%250).1 … (as the Go peer makes them). */
export function initialAddresses(s: number, perService: number): string[] {
  return Array.from({ length: perService }, (_, e) => `10.0.${s % 250}.${e + 1}`);
}

/** The address of the k-th endpoint the benchmark adds (k from 0); unique per run. */
export function addedAddress(k: number): string {
  return `10.1.${Math.floor(k / 250)}.${(k % 250) + 1}`;
}

export class MeshConfigDir {
  readonly endpointsFile: string;
  private readonly extra = new Map<number, string[]>();

  constructor(
    readonly dir: string,
    readonly services: number,
    readonly perService: number,
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.endpointsFile = path.join(dir, 'endpoints.yaml');
    const docs = Array.from({ length: services }, (_, s) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: serviceName(s), namespace: 'default' },
      spec: { ports: [{ name: 'http', port: 80, targetPort: ENDPOINT_PORT, appProtocol: 'http' }] },
    }));
    fs.writeFileSync(path.join(dir, 'services.yaml'), docs.map((d) => YAML.stringify(d)).join('---\n'));
    this.writeEndpoints();
  }

  /** Adds one address to service `s` by rewriting the EndpointSlice file (atomically,
   *  by rename, as editors and kubectl-style tools do). */
  addEndpoint(s: number, address: string): void {
    this.extra.set(s, [...(this.extra.get(s) ?? []), address]);
    this.writeEndpoints();
  }

  private writeEndpoints(): void {
    const docs = Array.from({ length: this.services }, (_, s) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${serviceName(s)}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': serviceName(s) } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: ENDPOINT_PORT }],
      endpoints: [...initialAddresses(s, this.perService), ...(this.extra.get(s) ?? [])].map((a) => ({ addresses: [a] })),
    }));
    const tmp = `${this.endpointsFile}.tmp`;
    fs.writeFileSync(tmp, docs.map((d) => YAML.stringify(d)).join('---\n'));
    fs.renameSync(tmp, this.endpointsFile);
  }
}
