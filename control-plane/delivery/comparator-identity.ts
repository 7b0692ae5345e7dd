// The comparator's own mesh identity: a certificate of the built-in CA for
// `spiffe://{trustDomain}/ns/tessera-system/sa/tessera-comparator`, with a key made
// here that never leaves the process, renewed at half-life. With it the comparator
// speaks mTLS to instances whose sidecar has a certificate (as sidecars do), so a
// ParallelRun works under STRICT too, and AuthorizationPolicies see who it is.
import { webcrypto, X509Certificate } from 'node:crypto';
// @peculiar/x509's dependency injection (tsyringe) needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { CertificateAuthority, WorkloadIdentity } from '../identity/ca.ts';
import { COMPARATOR_WORKLOAD } from '../model/types.ts';
import { uriSans } from './mirror-acceptance.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const COMPARATOR_IDENTITY: WorkloadIdentity = { ...COMPARATOR_WORKLOAD };

export interface ClientTls {
  key: string;
  /** Leaf then intermediate. */
  cert: string;
  /** Trust bundle (roots). */
  ca: string;
  spiffeId: string;
}

export class ComparatorIdentity {
  private material?: ClientTls;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly ca: Pick<CertificateAuthority, 'issue' | 'trustBundle'>,
    private readonly lifetimeMs: () => number,
    private readonly log: (line: string) => void,
  ) {}

  /** The current certificate and key, with the trust bundle as it is now (a root
   *  rotation changes it); a new object whenever any of them changed. */
  current(): ClientTls | undefined {
    const m = this.material;
    if (!m) return undefined;
    const bundle = this.ca.trustBundle();
    if (bundle !== m.ca) this.material = { ...m, ca: bundle };
    return this.material;
  }

  async start(): Promise<void> {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const issued = await this.ca.issue(csr.toString('pem'), COMPARATOR_IDENTITY, this.lifetimeMs());
    this.material = { key: x509.PemConverter.encode(der, 'PRIVATE KEY'), cert: issued.certificateChain, ca: issued.trustBundle, spiffeId: issued.spiffeId };
    const leaf = new X509Certificate(issued.certificateChain);
    const renewIn = Math.max(1000, (Date.parse(leaf.validTo) - Date.now()) / 2);
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.start().catch((err: Error) => {
        this.log(`comparator: certificate not renewed, retrying in 10 s: ${err.message}`);
        this.timer = setTimeout(() => void this.start().catch(() => {}), 10_000);
        this.timer.unref();
      });
    }, renewIn);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}

/** Node's check of the server's identity, for SPIFFE: one of the URI SANs must be one
 *  of the Service's identities (there is no host name to check). */
export function checkSpiffeIdentity(identities: string[]) {
  return (_host: string, cert: { subjectaltname?: string }): Error | undefined => {
    const uris = uriSans(cert.subjectaltname);
    return uris.some((u) => identities.includes(u)) ? undefined : new Error(`peer is ${uris.join(', ') || 'no SPIFFE identity'}, not one of ${identities.join(', ')}`);
  };
}
