// The agent's SDS server: Envoy asks over a Unix socket only the agent can reach for
// the secrets `default` (its certificate and key) and `ROOTCA` (the trust bundle).
// The key never crosses the network, and a proxy can only ever get its own identity.
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { envoyRoot, grpcPackageDefinition } from '../../protos/loader.ts';
import type { WorkloadCertificate } from './identity.ts';

/** The secret names the control plane's listeners and clusters ask for. */
export const SDS_SECRET = { certificate: 'default', trustBundle: 'ROOTCA' } as const;
const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

interface DiscoveryRequest {
  version_info?: string;
  resource_names?: string[];
  response_nonce?: string;
  error_detail?: { message?: string };
}

export class SdsServer {
  private readonly server = new grpc.Server();
  private readonly streams = new Set<{ names: string[]; send: () => void }>();
  private cert?: WorkloadCertificate;
  private version = 0;

  constructor(private readonly log: (line: string) => void) {
    const definition = grpc.loadPackageDefinition(grpcPackageDefinition()) as unknown as {
      envoy: { service: { secret: { v3: { SecretDiscoveryService: grpc.ServiceClientConstructor } } } };
    };
    const service = definition.envoy.service.secret.v3.SecretDiscoveryService.service;
    this.server.addService(service, {
      StreamSecrets: (call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) => this.stream(call),
      FetchSecrets: (_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
        callback({ code: grpc.status.UNIMPLEMENTED, message: 'use StreamSecrets' }),
      DeltaSecrets: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.destroy(new Error('delta SDS is not served; use StreamSecrets')),
    });
  }

  async listen(socketPath: string): Promise<void> {
    fs.rmSync(socketPath, { force: true });
    await new Promise<void>((resolve, reject) =>
      this.server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    fs.chmodSync(socketPath, 0o600);
  }

  update(cert: WorkloadCertificate): void {
    this.cert = cert;
    this.version++;
    for (const s of this.streams) s.send();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }

  private stream(call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>): void {
    let nonce = 0;
    let sentVersion = -1;
    const state = {
      names: [] as string[],
      send: () => {
        if (!this.cert || state.names.length === 0 || sentVersion === this.version) return;
        sentVersion = this.version;
        call.write({
          version_info: String(this.version),
          type_url: SECRET_TYPE,
          nonce: String(++nonce),
          resources: state.names.flatMap((name) => {
            const secret = secretFor(name, this.cert!);
            return secret ? [{ type_url: SECRET_TYPE, value: encodeSecret(secret) }] : [];
          }),
        });
      },
    };
    this.streams.add(state);
    call.on('data', (req: DiscoveryRequest) => {
      if (req.error_detail?.message) this.log(`envoy refused its secrets (version ${req.version_info}): ${req.error_detail.message.slice(0, 500)}`);
      const names = [...(req.resource_names ?? [])].sort();
      if (names.join('\n') !== state.names.join('\n')) {
        state.names = names;
        sentVersion = -1;
      }
      state.send();
    });
    const end = () => this.streams.delete(state);
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('error', end);
    call.on('close', end);
  }
}

function secretFor(name: string, cert: WorkloadCertificate): Record<string, unknown> | undefined {
  if (name === SDS_SECRET.certificate) {
    return {
      name,
      tls_certificate: { certificate_chain: { inline_bytes: Buffer.from(cert.chainPem) }, private_key: { inline_bytes: Buffer.from(cert.keyPem) } },
    };
  }
  if (name === SDS_SECRET.trustBundle) return { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(cert.bundlePem) } } };
  return undefined;
}

function encodeSecret(secret: Record<string, unknown>): Buffer {
  const type = envoyRoot().lookupType('envoy.extensions.transport_sockets.tls.v3.Secret');
  return Buffer.from(type.encode(type.fromObject(secret)).finish());
}
