// The mesh's certificate authority: a root and an intermediate (ECDSA P-256), kept on
// disk (keys 0600) or given by files, that signs workload certificates whose only name
// is the SPIFFE ID the caller proved. X.509 is @peculiar/x509's; nothing here encodes ASN.1.
//
// Root rotation keeps every workload talking: the new root joins the trust bundle at
// once, signing moves to it only after `rotationGraceMs` (time for every agent to fetch
// the bundle), and the old root stays trusted until the last leaf it signed expires.
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
// @peculiar/x509's dependency injection (tsyringe) needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { workloadSpiffeId } from '../model/types.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const ROOT_LIFETIME_MS = 10 * 365 * 24 * 3600_000;
const INTERMEDIATE_LIFETIME_MS = 365 * 24 * 3600_000;
/** Clocks of workloads may be behind the control plane's. */
export const BACKDATE_MS = 60_000;

export class CaError extends Error {
  readonly code = 'TESSERA_ERR_CA';
}

/** Why a CSR was refused: the caller's mistake (400), not the CA's. */
export class CsrError extends Error {
  readonly code = 'TESSERA_ERR_CSR';
}

export interface WorkloadIdentity {
  namespace: string;
  serviceAccount: string;
}

export function spiffeId(trustDomain: string, id: WorkloadIdentity): string {
  return workloadSpiffeId(trustDomain, id.namespace, id.serviceAccount);
}

export interface IssuedCertificate {
  spiffeId: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** Leaf then intermediate, PEM. */
  certificateChain: string;
  /** Every root a peer's chain may end at (during a rotation, old and new). */
  trustBundle: string;
}

interface Authority {
  root: x509.X509Certificate;
  intermediate: x509.X509Certificate;
  intermediateKey: CryptoKey;
}

interface TrustedRoot {
  cert: x509.X509Certificate;
  /** Epoch ms after which this (retired) root is no longer needed; absent for the current one. */
  retireAt?: number;
}

export interface CaOptions {
  /** Where the generated root and intermediate live; created (0700) when missing. */
  dir: string;
  trustDomain: string;
  /** A user's own CA instead of a generated one: this certificate signs the
   *  intermediate (it may itself be an intermediate of the user's PKI). */
  given?: { certFile: string; keyFile: string };
  rotationGraceMs?: number;
  /** The longest leaf lifetime the mesh issues: how long a retired root stays trusted. */
  maxLeafLifetimeMs?: () => number;
  now?: () => number;
}

export class CertificateAuthority {
  private signing: Authority;
  private pending?: { authority: Authority; switchAt: number };
  private roots: TrustedRoot[];
  private readonly now: () => number;

  private constructor(
    private readonly options: CaOptions,
    authority: Authority,
    roots: TrustedRoot[],
  ) {
    this.signing = authority;
    this.roots = roots;
    this.now = options.now ?? Date.now;
  }

  static async open(options: CaOptions): Promise<CertificateAuthority> {
    let authority = await loadAuthority(options.dir);
    if (authority && options.given && authority.root.toString('pem') !== readCertificate(options.given.certFile).toString('pem')) {
      throw new CaError(`${options.dir} holds an intermediate of another CA than ${options.given.certFile}: point --ca-dir at an empty directory for the new CA`);
    }
    authority ??= await createAuthority(options);
    const roots: TrustedRoot[] = [{ cert: authority.root }];
    for (const retired of loadRetiredRoots(options.dir)) if (retired.retireAt! > Date.now()) roots.push(retired);
    const ca = new CertificateAuthority(options, authority, roots);
    // A rotation under way when the control plane stopped goes on where it was.
    const pending = await loadAuthority(options.dir, 'pending-');
    if (pending) {
      ca.pending = { authority: pending, switchAt: Number(fs.readFileSync(path.join(options.dir, 'pending-switch-at'), 'utf8')) };
      ca.roots.push({ cert: pending.root });
    }
    return ca;
  }

  get trustDomain(): string {
    return this.options.trustDomain;
  }

  /** PEM of every root a workload must trust now. */
  trustBundle(): string {
    this.advance();
    return this.roots.map((r) => r.cert.toString('pem')).join('\n') + '\n';
  }

  /** The CA certificates with their expiry, for the admin API and metrics. */
  authorities(): { kind: 'root' | 'intermediate'; subject: string; serial: string; notAfter: Date; retiring?: Date }[] {
    this.advance();
    return [
      ...this.roots.map((r) => ({
        kind: 'root' as const,
        subject: r.cert.subject,
        serial: r.cert.serialNumber,
        notAfter: r.cert.notAfter,
        ...(r.retireAt ? { retiring: new Date(r.retireAt) } : {}),
      })),
      { kind: 'intermediate' as const, subject: this.signing.intermediate.subject, serial: this.signing.intermediate.serialNumber, notAfter: this.signing.intermediate.notAfter },
    ];
  }

  /** Signs the CSR's key for `identity`. Whatever names the CSR asks for are ignored:
   *  the certificate's only SAN is the proven identity's SPIFFE ID. */
  async issue(csrPem: string, identity: WorkloadIdentity, lifetimeMs: number, trustDomain = this.options.trustDomain): Promise<IssuedCertificate> {
    this.advance();
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (err) {
      throw new CsrError(`csr is not a PEM PKCS#10 certificate request: ${(err as Error).message}`);
    }
    if (!(await csr.verify())) throw new CsrError('csr signature does not verify: the request was not signed by the key it carries');
    const algorithm = csr.publicKey.algorithm as EcKeyAlgorithm;
    if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
      throw new CsrError(`csr key must be ECDSA P-256, got ${algorithm.name}${algorithm.namedCurve ? ` ${algorithm.namedCurve}` : ''}`);
    }
    const id = spiffeId(trustDomain, identity);
    const { intermediate, intermediateKey } = this.signing;
    const now = this.now();
    const notBefore = new Date(now - BACKDATE_MS);
    // Never outlive the issuer: a chain that expires before its leaf is a surprise outage.
    const notAfter = new Date(Math.min(now + lifetimeMs, intermediate.notAfter.getTime()));
    const serial = serialNumber();
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: '',
      issuer: intermediate.subject,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: intermediateKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        // SPIFFE: the URI SAN is the identity; with an empty subject the SAN is critical.
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], true),
        await x509.AuthorityKeyIdentifierExtension.create(intermediate),
      ],
    });
    return {
      spiffeId: id,
      serial: leaf.serialNumber,
      notBefore,
      notAfter,
      certificateChain: `${leaf.toString('pem')}\n${intermediate.toString('pem')}\n`,
      trustBundle: this.trustBundle(),
    };
  }

  /** A serving certificate for the control plane itself (its xDS port over TLS): the
   *  SPIFFE ID `spiffe://{trustDomain}/ns/{namespace}/sa/{serviceAccount}` and the given
   *  DNS names and IPs, with a key made here. */
  async issueServing(identity: WorkloadIdentity, names: string[], lifetimeMs: number): Promise<IssuedCertificate & { keyPem: string }> {
    this.advance();
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const { intermediate, intermediateKey } = this.signing;
    const now = this.now();
    const notBefore = new Date(now - BACKDATE_MS);
    const notAfter = new Date(Math.min(now + lifetimeMs, intermediate.notAfter.getTime()));
    const id = spiffeId(this.options.trustDomain, identity);
    const altNames: x509.JsonGeneralName[] = [{ type: 'url', value: id }];
    for (const name of names) altNames.push(isIP(name) ? { type: 'ip', value: name } : { type: 'dns', value: name });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: '',
      issuer: intermediate.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: intermediateKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(altNames, true),
        await x509.AuthorityKeyIdentifierExtension.create(intermediate),
      ],
    });
    return {
      spiffeId: id,
      serial: cert.serialNumber,
      notBefore,
      notAfter,
      certificateChain: `${cert.toString('pem')}\n${intermediate.toString('pem')}\n`,
      trustBundle: this.trustBundle(),
      keyPem: await privateKeyPem(keys.privateKey),
    };
  }

  /** Starts a root rotation: a new root is trusted at once and signs after the grace
   *  period. Refused while one is under way. */
  async rotate(): Promise<{ switchAt: Date }> {
    this.advance();
    if (this.pending) throw new CaError(`a root rotation is already under way (signing moves to the new root at ${new Date(this.pending.switchAt).toISOString()})`);
    if (this.options.given) throw new CaError('this CA is given by files (--ca-cert/--ca-key): rotate it in your own PKI and restart with the new files');
    const authority = await generateAuthority(this.options.trustDomain);
    const switchAt = this.now() + (this.options.rotationGraceMs ?? 60_000);
    await writePending(this.options.dir, authority, switchAt);
    this.pending = { authority, switchAt };
    this.roots.push({ cert: authority.root });
    return { switchAt: new Date(switchAt) };
  }

  /** Applies what time has made due: a pending rotation's switch, a retired root's removal. */
  private advance(): void {
    const now = this.now();
    if (this.pending && now >= this.pending.switchAt) {
      const old = this.signing;
      this.signing = this.pending.authority;
      this.pending = undefined;
      // A leaf signed just before the switch may live for the longest lifetime.
      const retireAt = now + (this.options.maxLeafLifetimeMs?.() ?? 24 * 3600_000) + BACKDATE_MS;
      const oldRoot = this.roots.find((r) => r.cert.serialNumber === old.root.serialNumber);
      if (oldRoot) oldRoot.retireAt = retireAt;
      promotePending(this.options.dir, old, retireAt);
    }
    this.roots = this.roots.filter((r) => r.retireAt === undefined || r.retireAt > now);
  }
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f; // positive, as RFC 5280 requires
  return bytes.toString('hex');
}

async function generateAuthority(trustDomain: string): Promise<Authority> {
  const rootKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `O=Tessera, CN=Tessera root ${trustDomain} ${new Date(now).toISOString()}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + ROOT_LIFETIME_MS),
    keys: rootKeys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  return signIntermediate(trustDomain, root, rootKeys.privateKey);
}

async function signIntermediate(trustDomain: string, issuer: x509.X509Certificate, issuerKey: CryptoKey): Promise<Authority> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `O=Tessera, CN=Tessera intermediate ${trustDomain} ${new Date(now).toISOString()}`,
    issuer: issuer.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + INTERMEDIATE_LIFETIME_MS, issuer.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey: issuerKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer),
    ],
  });
  return { root: issuer, intermediate, intermediateKey: keys.privateKey };
}

// ---- on disk: root.crt, intermediate.crt, intermediate.key (0600); a rotation adds
// pending-*.pem and, once switched, retired-roots.json ----

const FILES = { root: 'root.crt', intermediate: 'intermediate.crt', intermediateKey: 'intermediate.key' };

/** Generated into a fresh directory that is then renamed into place: two control
 *  planes starting at once on one directory end up with the same CA, never a mix. */
async function createAuthority(options: CaOptions): Promise<Authority> {
  const authority = await newAuthority(options);
  if (fs.existsSync(options.dir) && fs.readdirSync(options.dir).length === 0) {
    // An empty directory made for the CA (a mounted volume cannot be renamed over).
    fs.chmodSync(options.dir, 0o700);
    await writeAuthority(options.dir, authority);
    return authority;
  }
  fs.mkdirSync(path.dirname(options.dir), { recursive: true });
  const staging = fs.mkdtempSync(`${options.dir}.new-`);
  fs.chmodSync(staging, 0o700);
  await writeAuthority(staging, authority);
  try {
    fs.renameSync(staging, options.dir);
    return authority;
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    const winner = await loadAuthority(options.dir);
    if (!winner) throw new CaError(`${options.dir} exists but holds no CA (${FILES.intermediateKey} is missing): remove it or point --ca-dir elsewhere`);
    return winner;
  }
}

async function newAuthority(options: CaOptions): Promise<Authority> {
  let authority: Authority;
  if (options.given) {
    const issuer = readCertificate(options.given.certFile);
    const basic = issuer.getExtension(x509.BasicConstraintsExtension);
    if (!basic?.ca) throw new CaError(`${options.given.certFile} is not a CA certificate (basicConstraints CA:TRUE is missing)`);
    authority = await signIntermediate(options.trustDomain, issuer, await readPrivateKey(options.given.keyFile));
  } else {
    authority = await generateAuthority(options.trustDomain);
  }
  return authority;
}

async function loadAuthority(dir: string, prefix = ''): Promise<Authority | undefined> {
  const file = (name: string) => path.join(dir, prefix + name);
  if (prefix && !fs.existsSync(path.join(dir, 'pending-switch-at'))) return undefined;
  if (!fs.existsSync(file(FILES.intermediateKey))) return undefined;
  const root = readCertificate(file(FILES.root));
  const intermediate = readCertificate(file(FILES.intermediate));
  const intermediateKey = await readPrivateKey(file(FILES.intermediateKey));
  if (!(await intermediate.verify({ publicKey: root.publicKey, signatureOnly: true }))) {
    throw new CaError(`${file(FILES.intermediate)} is not signed by ${file(FILES.root)}: the CA directory is inconsistent`);
  }
  return { root, intermediate, intermediateKey };
}

async function writeAuthority(dir: string, a: Authority, prefix = ''): Promise<void> {
  // The key last (0600 from its creation): loadAuthority takes a directory only once
  // the key is there, so a crash in between leaves nothing half-made to load.
  writeAtomic(path.join(dir, prefix + FILES.root), a.root.toString('pem'), 0o644);
  writeAtomic(path.join(dir, prefix + FILES.intermediate), a.intermediate.toString('pem'), 0o644);
  writeAtomic(path.join(dir, prefix + FILES.intermediateKey), await privateKeyPem(a.intermediateKey), 0o600);
}

async function writePending(dir: string, a: Authority, switchAt: number): Promise<void> {
  await writeAuthority(dir, a, 'pending-');
  writeAtomic(path.join(dir, 'pending-switch-at'), String(switchAt), 0o644);
}

function promotePending(dir: string, old: Authority, retireAt: number): void {
  const retired = loadRetiredRoots(dir).map((r) => ({ pem: r.cert.toString('pem'), retireAt: r.retireAt }));
  retired.push({ pem: old.root.toString('pem'), retireAt });
  writeAtomic(path.join(dir, 'retired-roots.json'), JSON.stringify(retired), 0o644);
  for (const name of [FILES.intermediateKey, FILES.root, FILES.intermediate]) {
    const pending = path.join(dir, `pending-${name}`);
    if (fs.existsSync(pending)) fs.renameSync(pending, path.join(dir, name));
  }
  fs.rmSync(path.join(dir, 'pending-switch-at'), { force: true });
}

function loadRetiredRoots(dir: string): TrustedRoot[] {
  const file = path.join(dir, 'retired-roots.json');
  if (!fs.existsSync(file)) return [];
  const entries = JSON.parse(fs.readFileSync(file, 'utf8')) as { pem: string; retireAt: number }[];
  return entries.map((e) => ({ cert: new x509.X509Certificate(e.pem), retireAt: e.retireAt }));
}

function writeAtomic(file: string, content: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

function readCertificate(file: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CaError(`${file}: not a PEM certificate (${(err as Error).message})`);
  }
}

async function readPrivateKey(file: string): Promise<CryptoKey> {
  try {
    // Any PEM form openssl writes (SEC1 "EC PRIVATE KEY" or PKCS#8) becomes PKCS#8 for WebCrypto.
    const der = createPrivateKey(fs.readFileSync(file)).export({ format: 'der', type: 'pkcs8' });
    return await webcrypto.subtle.importKey('pkcs8', der, EC, true, ['sign']);
  } catch (err) {
    throw new CaError(`${file}: not an ECDSA P-256 private key (${(err as Error).message})`);
  }
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}
