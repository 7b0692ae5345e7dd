// The workload's certificate: the agent makes its own P-256 key (it never leaves this
// process and Envoy's memory), proves who it is with a join token or its Kubernetes
// service-account token, and renews at half-life with jitter. The trust bundle is
// polled so a root rotation reaches Envoy before any peer shows a leaf of the new root.
import { EventEmitter } from 'node:events';
import { webcrypto } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
// @peculiar/x509's dependency injection (tsyringe) needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { request } from 'undici';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export type IdentityProof = { joinTokenFile: string } | { kubernetesTokenFile: string };

export interface WorkloadCertificate {
  keyPem: string;
  /** Leaf then intermediate. */
  chainPem: string;
  bundlePem: string;
  spiffeId: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export class IdentityRefusedError extends Error {
  readonly code = 'TESSERA_ERR_IDENTITY_REFUSED';
}

/** A new P-256 key and a CSR for it. The CSR names nothing: the CA decides the SAN. */
export async function createKeyAndCsr(): Promise<{ keyPem: string; csrPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: SIGNING });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keyPem: x509.PemConverter.encode(der, 'PRIVATE KEY'), csrPem: csr.toString('pem') };
}

export interface CertificateManagerOptions {
  controlPlane: string;
  proof: IdentityProof;
  node: string;
  bundleRefreshMs: number;
  log: (line: string) => void;
  /** Also write cert.pem, key.pem (0600) and ca.pem here, for proxyless gRPC (gRFC A29 file_watcher). */
  certDir?: string;
}

/** Emits 'update' (WorkloadCertificate) on every new certificate or trust bundle. */
export class CertificateManager extends EventEmitter {
  private cert?: WorkloadCertificate;
  private renewTimer?: NodeJS.Timeout;
  private bundleTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly o: CertificateManagerOptions) {
    super();
  }

  get current(): WorkloadCertificate | undefined {
    return this.cert;
  }

  /** Resolves with the first certificate; retries while the control plane is away,
   *  rejects with IdentityRefusedError when the proof is refused (retrying cannot help). */
  async start(): Promise<WorkloadCertificate> {
    for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
      if (this.stopped) throw new Error('stopped');
      try {
        const cert = await this.fetchCertificate();
        this.install(cert);
        this.bundleTimer = setInterval(() => void this.refreshBundle(), this.o.bundleRefreshMs);
        this.bundleTimer.unref();
        return cert;
      } catch (err) {
        if (err instanceof IdentityRefusedError) throw err;
        this.o.log(`certificate: ${(err as Error).message}; retrying`);
        await sleep(delay);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearInterval(this.bundleTimer);
  }

  private install(cert: WorkloadCertificate): void {
    this.cert = cert;
    if (this.o.certDir) writeCertFiles(this.o.certDir, cert);
    this.emit('update', cert);
    // Half-life with ±10% jitter, so a fleet started together does not renew together.
    const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
    const at = cert.notBefore.getTime() + lifetime * (0.5 + (Math.random() - 0.5) * 0.2);
    this.scheduleRenewal(Math.max(1000, at - Date.now()));
  }

  private scheduleRenewal(inMs: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), inMs);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    try {
      const cert = await this.fetchCertificate();
      this.o.log(`certificate renewed: ${cert.spiffeId} serial ${cert.serial}, valid until ${cert.notAfter.toISOString()}`);
      this.install(cert);
    } catch (err) {
      // The current certificate still serves; try again soon, well before it expires.
      const left = (this.cert?.notAfter.getTime() ?? Date.now()) - Date.now();
      this.o.log(`certificate renewal failed (${(err as Error).message}); ${Math.round(left / 1000)} s left on the current one, retrying`);
      this.scheduleRenewal(Math.max(1000, Math.min(30_000, left / 10)));
    }
  }

  private async refreshBundle(): Promise<void> {
    if (this.stopped || !this.cert) return;
    try {
      const res = await request(`${this.o.controlPlane}/api/v1/trust-bundle`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
      const text = await res.body.text();
      if (res.statusCode !== 200 || !text.includes('BEGIN CERTIFICATE')) throw new Error(`GET /api/v1/trust-bundle answered ${res.statusCode}`);
      if (text === this.cert.bundlePem) return;
      this.o.log('trust bundle changed (a root rotation): serving the new bundle');
      this.cert = { ...this.cert, bundlePem: text };
      if (this.o.certDir) writeCertFiles(this.o.certDir, this.cert);
      this.emit('update', this.cert);
    } catch (err) {
      this.o.log(`trust bundle refresh failed: ${(err as Error).message}`);
    }
  }

  private async fetchCertificate(): Promise<WorkloadCertificate> {
    const { keyPem, csrPem } = await createKeyAndCsr();
    const proof =
      'joinTokenFile' in this.o.proof
        ? { joinToken: readSecretFile(this.o.proof.joinTokenFile, '--join-token-file') }
        : { kubernetesToken: readSecretFile(this.o.proof.kubernetesTokenFile, '--kube-token-file') };
    const res = await request(`${this.o.controlPlane}/api/v1/certificates`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ csr: csrPem, node: this.o.node, ...proof }),
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    const text = await res.body.text();
    if (res.statusCode === 400 || res.statusCode === 401 || res.statusCode === 403) {
      throw new IdentityRefusedError(`the control plane refused a certificate (${res.statusCode}): ${errorMessage(text)}`);
    }
    if (res.statusCode !== 200) throw new Error(`POST /api/v1/certificates answered ${res.statusCode}: ${errorMessage(text)}`);
    const body = JSON.parse(text) as { certificateChain: string; trustBundle: string; spiffeId: string; serial: string; notBefore: string; notAfter: string };
    return {
      keyPem,
      chainPem: body.certificateChain,
      bundlePem: body.trustBundle,
      spiffeId: body.spiffeId,
      serial: body.serial,
      notBefore: new Date(body.notBefore),
      notAfter: new Date(body.notAfter),
    };
  }
}

function readSecretFile(file: string, flag: string): string {
  try {
    const value = fs.readFileSync(file, 'utf8').trim();
    if (!value) throw new Error('the file is empty');
    return value;
  } catch (err) {
    throw new IdentityRefusedError(`${flag} ${file}: ${(err as Error).message}`);
  }
}

function errorMessage(text: string): string {
  try {
    return (JSON.parse(text) as { error?: string }).error ?? text.slice(0, 300);
  } catch {
    return text.slice(0, 300);
  }
}

/** Written so a reader (grpc's file_watcher) never sees a key of one certificate
 *  with the chain of another for long: each file is replaced atomically, key last. */
export function writeCertFiles(dir: string, cert: WorkloadCertificate): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const write = (name: string, content: string, mode: number) => {
    const tmp = path.join(dir, `.${name}.tmp`);
    fs.writeFileSync(tmp, content, { mode });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, path.join(dir, name));
  };
  write('ca.pem', cert.bundlePem, 0o644);
  write('cert.pem', cert.chainPem, 0o644);
  write('key.pem', cert.keyPem, 0o600);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
