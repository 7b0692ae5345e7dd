// The mesh CA on its own: what it signs, what it keeps on disk, and how a root rotation
// moves through time (a fake clock).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import test from 'ava';
import { CertificateAuthority, CsrError } from '../../control-plane/identity/ca.ts';
import { createKeyAndCsr } from '../../sidecar/agent/identity.ts';
import { makeCa } from '../support/certs.ts';

function tmp(t: { teardown: (f: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ca-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const certs = (pem: string) => pem.split(/(?=-----BEGIN CERTIFICATE-----)/).map((p) => new X509Certificate(p));

test('a generated CA keeps its keys 0600, signs P-256 CSRs for the given identity only, and is the same CA after a restart', async (t) => {
  const dir = path.join(tmp(t), 'ca');
  const ca = await CertificateAuthority.open({ dir, trustDomain: 'example.org' });
  t.is(fs.statSync(path.join(dir, 'intermediate.key')).mode & 0o777, 0o600);
  t.is(fs.statSync(dir).mode & 0o777, 0o700);
  const { csrPem } = await createKeyAndCsr();
  const issued = await ca.issue(csrPem, { namespace: 'shop', serviceAccount: 'cart' }, 3600_000);
  const [leaf, intermediate] = certs(issued.certificateChain);
  const [root] = certs(issued.trustBundle);
  t.is(leaf.subjectAltName, 'URI:spiffe://example.org/ns/shop/sa/cart');
  t.true(leaf.verify(intermediate.publicKey));
  t.true(intermediate.verify(root.publicKey));
  t.true(intermediate.ca && root.ca && !leaf.ca);
  t.regex(leaf.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.1.*1\.3\.6\.1\.5\.5\.7\.3\.2|1\.3\.6\.1\.5\.5\.7\.3\.2.*1\.3\.6\.1\.5\.5\.7\.3\.1/, 'serverAuth and clientAuth');

  const again = await CertificateAuthority.open({ dir, trustDomain: 'example.org' });
  t.is(again.trustBundle(), ca.trustBundle(), 'a restart keeps the root');

  await t.throwsAsync(ca.issue('garbage', { namespace: 'a', serviceAccount: 'b' }, 1000), { instanceOf: CsrError });
});

test('two control planes creating one CA directory at once end up with one CA', async (t) => {
  const dir = path.join(tmp(t), 'ca');
  const [a, b] = await Promise.all([
    CertificateAuthority.open({ dir, trustDomain: 'x.local' }),
    CertificateAuthority.open({ dir, trustDomain: 'x.local' }),
  ]);
  t.is(a.trustBundle(), b.trustBundle());
  t.deepEqual(fs.readdirSync(path.dirname(dir)), ['ca']);
});

test("a CA given by files signs an intermediate under it, and no certificate outlives its issuer", async (t) => {
  const dir = tmp(t);
  const given = makeCa(dir, 'corp-root'); // valid for 2 days
  const ca = await CertificateAuthority.open({ dir: path.join(dir, 'ca'), trustDomain: 'corp.example', given: { certFile: given.cert, keyFile: given.key } });
  const issued = await ca.issue((await createKeyAndCsr()).csrPem, { namespace: 'default', serviceAccount: 'api' }, 30 * 24 * 3600_000);
  const [leaf, intermediate] = certs(issued.certificateChain);
  const root = new X509Certificate(fs.readFileSync(given.cert));
  t.true(intermediate.verify(root.publicKey));
  t.true(Date.parse(leaf.validTo) <= Date.parse(intermediate.validTo), `${leaf.validTo} <= ${intermediate.validTo}`);
  t.true(Date.parse(intermediate.validTo) <= Date.parse(root.validTo));
  await t.throwsAsync(ca.rotate(), { message: /given by files/ });
  // A directory holding another CA's intermediate is refused rather than mixed.
  const other = makeCa(dir, 'other-root');
  await t.throwsAsync(CertificateAuthority.open({ dir: path.join(dir, 'ca'), trustDomain: 'corp.example', given: { certFile: other.cert, keyFile: other.key } }), { message: /another CA/ });
});

test('root rotation: the new root is trusted at once, signs after the grace period, and the old one is retired when its last leaf has expired', async (t) => {
  const dir = path.join(tmp(t), 'ca');
  let now = Date.now();
  const leafLifetime = 10 * 60_000;
  const options = { dir, trustDomain: 'r.local', rotationGraceMs: 30_000, maxLeafLifetimeMs: () => leafLifetime, now: () => now };
  const ca = await CertificateAuthority.open(options);
  const csr = async () => (await createKeyAndCsr()).csrPem;
  const id = { namespace: 'default', serviceAccount: 'api' };
  const [oldRoot] = certs(ca.trustBundle());

  await ca.rotate();
  await t.throwsAsync(ca.rotate(), { message: /already under way/ });
  const during = certs(ca.trustBundle());
  t.is(during.length, 2);
  const newRoot = during.find((c) => c.serialNumber !== oldRoot.serialNumber)!;
  // Within the grace period, leaves still come from the old root.
  const early = certs((await ca.issue(await csr(), id, leafLifetime)).certificateChain)[1];
  t.true(early.verify(oldRoot.publicKey));

  // A restart in the middle of the rotation goes on with it.
  const restarted = await CertificateAuthority.open(options);
  t.is(certs(restarted.trustBundle()).length, 2);

  now += 31_000;
  const late = certs((await ca.issue(await csr(), id, leafLifetime)).certificateChain)[1];
  t.true(late.verify(newRoot.publicKey), 'after the grace period the new root signs');
  t.is(certs(ca.trustBundle()).length, 2, 'the old root is still trusted while its leaves live');
  t.truthy(ca.authorities().find((a) => a.kind === 'root' && a.serial.toUpperCase() === oldRoot.serialNumber.toUpperCase())?.retiring);

  now += leafLifetime + 61_000;
  t.deepEqual(certs(ca.trustBundle()).map((c) => c.serialNumber), [newRoot.serialNumber]);
  const reopened = await CertificateAuthority.open({ ...options, now: () => now });
  t.deepEqual(certs(reopened.trustBundle()).map((c) => c.serialNumber), [newRoot.serialNumber], 'the switch was kept on disk');
});

test('an empty directory made for the CA (a mounted volume) is filled in place', async (t) => {
  const dir = path.join(tmp(t), 'mounted');
  fs.mkdirSync(dir);
  const ca = await CertificateAuthority.open({ dir, trustDomain: 'm.local' });
  t.deepEqual(fs.readdirSync(dir).sort(), ['intermediate.crt', 'intermediate.key', 'root.crt']);
  t.is((await CertificateAuthority.open({ dir, trustDomain: 'm.local' })).trustBundle(), ca.trustBundle());
});
