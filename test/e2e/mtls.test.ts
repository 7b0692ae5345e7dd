// mTLS between real Envoys run by `tessera sidecar`: certificates from the mesh CA over
// the agent's SDS, STRICT / PERMISSIVE / DISABLE, and who can get which certificate.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { webcrypto, X509Certificate } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import test from 'ava';
import { request } from 'undici';
import { createKeyAndCsr } from '../../sidecar/agent/identity.ts';
import { connect } from '../support/ads-client.ts';
import { makeCa, makeServerCert } from '../support/certs.ts';
import { envoyTest, requireEnvoy, startBackend, startControlPlaneProcess, tempDir, tesseraBin, type ControlPlaneProcess } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { startSidecar, steadyLoad } from '../support/sidecar.ts';

const SPIFFE = (sa: string) => `spiffe://tessera.local/ns/default/sa/${sa}`;

const meshConfig = (mode: string, lifetime = '24h') => `apiVersion: tessera.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  mtls: {mode: ${mode}}
  certificateLifetime: ${lifetime}
`;

const API_SERVICE = `apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
`;

async function post(cp: ControlPlaneProcess, p: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await request(cp.adminUrl + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
}

async function joinTokenFile(t: any, cp: ControlPlaneProcess, serviceAccount: string): Promise<string> {
  const { status, json } = await post(cp, '/api/v1/join-tokens', { serviceAccount });
  t.is(status, 201, JSON.stringify(json));
  const file = path.join(tempDir(t, 'tessera-token-'), 'token');
  fs.writeFileSync(file, json.token, { mode: 0o600 });
  return file;
}

/** A control plane, `api` (app + sidecar with inbound) and an outbound-only `client` sidecar, all with certificates. */
async function mtlsMesh(t: any, mode: string, opts: { lifetime?: string; cpArgs?: string[]; sidecarArgs?: string[] } = {}) {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), API_SERVICE);
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), meshConfig(mode, opts.lifetime));
  const cp = await startControlPlaneProcess(t, { configDir: dir, readyTimeoutMs: 60_000, extraArgs: opts.cpArgs });
  const app = await startBackend(t, 'api-1');
  const sidecarArgs = opts.sidecarArgs ?? [];
  const server = await startSidecar(t, { service: 'api', appPort: app.port, controlPlane: cp, extraArgs: ['--join-token-file', await joinTokenFile(t, cp, 'api'), ...sidecarArgs] });
  const client = await startSidecar(t, {
    service: 'client',
    appPort: await freePort(),
    inbound: false,
    controlPlane: cp,
    extraArgs: ['--no-register', '--health-check', 'none', '--join-token-file', await joinTokenFile(t, cp, 'client'), ...sidecarArgs],
  });
  await Promise.all([server.waitReady(60_000), client.waitReady(60_000)]);
  const get = async () => {
    const res = await request(`http://127.0.0.1:${client.outboundPort}/hello`, { headers: { host: 'api' }, headersTimeout: 10_000 });
    const text = await res.body.text();
    return { status: res.statusCode, body: res.statusCode === 200 ? (JSON.parse(text) as { headers: Record<string, string> }) : undefined, text };
  };
  await waitFor('api to answer through the client sidecar', async () => (await get()).status === 200, 30_000, 100);
  return { dir, cp, app, server, client, get };
}

/** A certificate of the mesh for `serviceAccount`, obtained as an agent would. */
async function meshCertificate(t: any, cp: ControlPlaneProcess, serviceAccount: string) {
  const { keyPem, csrPem } = await createKeyAndCsr();
  const { status, json } = await post(cp, '/api/v1/certificates', { csr: csrPem, joinToken: fs.readFileSync(await joinTokenFile(t, cp, serviceAccount), 'utf8') });
  t.is(status, 200, JSON.stringify(json));
  return { key: keyPem, cert: json.certificateChain as string, ca: json.trustBundle as string };
}

/** Speaks HTTP/1.1 over TLS to `port` with the given client credentials; the status
 *  line, or the error that ended the attempt. */
function tlsRequest(port: number, creds: { key?: string; cert?: string; ca: string }): Promise<{ status?: number; error?: string; peer?: X509Certificate }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: creds.ca, key: creds.key, cert: creds.cert, rejectUnauthorized: false, servername: 'api' });
    let data = '';
    let peer: X509Certificate | undefined;
    const timer = setTimeout(() => finish({ error: 'timeout' }), 10_000);
    const finish = (r: { status?: number; error?: string }) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...r, peer });
    };
    socket.once('secureConnect', () => {
      peer = socket.getPeerX509Certificate();
      socket.write('GET /hello HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n');
    });
    socket.on('data', (chunk) => {
      data += chunk.toString();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (m) finish({ status: Number(m[1]) });
    });
    socket.once('error', (err) => finish({ error: err.message }));
    socket.once('close', () => finish({ error: data ? `closed after ${JSON.stringify(data.slice(0, 80))}` : 'closed with no answer' }));
  });
}

/** Plain HTTP to `port`: the status, or how the connection ended. */
async function plaintextRequest(port: number): Promise<number | string> {
  try {
    const res = await request(`http://127.0.0.1:${port}/hello`, { headers: { host: 'api' }, headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.dump();
    return res.statusCode;
  } catch (err) {
    return (err as Error).message;
  }
}

envoyTest.serial('STRICT: two sidecars talk over mTLS with SPIFFE identities; the inbound port refuses plaintext, no certificate and another CA', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, server, get } = await mtlsMesh(t, 'STRICT');

  // The app behind the server sidecar learns its caller's identity from the mTLS peer.
  const answer = await get();
  t.is(answer.status, 200);
  t.regex(answer.body!.headers['x-forwarded-client-cert'] ?? '', new RegExp(`URI=${SPIFFE('client').replace(/[/.]/g, '\\$&')}`));

  const inbound = server.inboundPort!;
  t.not(await plaintextRequest(inbound), 200, 'plaintext is refused in STRICT');
  const bundle = await (await request(`${cp.adminUrl}/api/v1/trust-bundle`)).body.text();
  const noCert = await tlsRequest(inbound, { ca: bundle });
  t.is(noCert.status, undefined, `a client without a certificate got ${noCert.status}`);

  const otherDir = tempDir(t, 'tessera-other-ca-');
  const otherCa = makeCa(otherDir, 'other-ca');
  const forged = makeServerCert(otherDir, 'forged', otherCa, [`URI:${SPIFFE('client')}`]);
  const foreign = await tlsRequest(inbound, { ca: bundle, key: fs.readFileSync(forged.key, 'utf8'), cert: fs.readFileSync(forged.cert, 'utf8') });
  t.is(foreign.status, undefined, `a certificate from another CA got ${foreign.status}`);

  // The same request with a mesh certificate succeeds, so the refusals above are about the certificate.
  const mine = await meshCertificate(t, cp, 'client');
  const good = await tlsRequest(inbound, mine);
  t.is(good.status, 200, good.error);
  // The server presents its own identity, issued to its node and chained to the mesh root.
  t.is(good.peer?.subjectAltName, `URI:${SPIFFE('api')}`);
  const issued = await cp.api<{ certificates: { serial: string; node: string; spiffeId: string }[] }>('/api/v1/certificates');
  t.is(issued.certificates.find((c) => c.node === `${server.instanceId}.default`)?.serial.toUpperCase(), good.peer!.serialNumber.toUpperCase());
  const [, intermediatePem] = mine.cert.split(/(?=-----BEGIN CERTIFICATE-----)/);
  const intermediate = new X509Certificate(intermediatePem);
  const roots = bundle.split(/(?=-----BEGIN CERTIFICATE-----)/).map((pem) => new X509Certificate(pem));
  t.true(good.peer!.verify(intermediate.publicKey), "the server's leaf is signed by the mesh intermediate");
  t.true(roots.some((root) => intermediate.verify(root.publicKey)), 'the intermediate is signed by a root of the trust bundle');

  // Config dumps show the secrets Envoy holds but never a private key: Envoy's own
  // (it redacts), and the control plane's view of what it sent.
  const envoyDump = await (await request(`${server.adminUrl}/config_dump?include_eds`)).body.text();
  t.regex(envoyDump, /"name": "default"/, 'the certificate secret is in Envoy');
  t.false(envoyDump.includes('PRIVATE KEY'));
  const sent = await (await request(`${cp.adminUrl}/api/v1/proxies/${encodeURIComponent(`${server.instanceId}.default`)}/config`)).body.text();
  t.regex(sent, /tessera_sds/);
  t.false(sent.includes('PRIVATE KEY'));
  t.false(good.peer!.ca);
});

test.serial('a workload gets a certificate for its proven identity only: CSR names are ignored, no proof is 401, forged node metadata gets no secret', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), API_SERVICE);
  const cp = await startControlPlaneProcess(t, { configDir: dir, readyTimeoutMs: 60_000 });

  // A CSR that asks for another identity (URI SAN and CN of "admin") is signed for the token's identity.
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const greedy = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=admin',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: SPIFFE('admin') }, { type: 'dns', value: 'admin.example' }])],
  });
  const token = fs.readFileSync(await joinTokenFile(t, cp, 'reviews'), 'utf8');
  const issued = await post(cp, '/api/v1/certificates', { csr: greedy.toString('pem'), joinToken: token, node: 'reviews-1' });
  t.is(issued.status, 200, JSON.stringify(issued.json));
  const leaf = new X509Certificate(issued.json.certificateChain.split(/(?=-----BEGIN CERTIFICATE-----)/)[0]);
  t.is(leaf.subjectAltName, `URI:${SPIFFE('reviews')}`, 'only the proven identity is in the SAN');
  t.false((leaf.subject ?? '').includes('admin'));
  t.is(issued.json.spiffeId, SPIFFE('reviews'));
  // Backdated a minute, 24h by default, never past the intermediate.
  const notBefore = Date.parse(leaf.validFrom);
  t.true(Date.now() - notBefore >= 55_000 && Date.now() - notBefore < 5 * 60_000, leaf.validFrom);
  t.true(Math.abs(Date.parse(leaf.validTo) - notBefore - (24 * 3600_000 + 60_000)) < 5_000, `${leaf.validFrom} .. ${leaf.validTo}`);

  // No proof, a made-up token, a revoked token, a broken CSR.
  const { csrPem } = await createKeyAndCsr();
  t.is((await post(cp, '/api/v1/certificates', { csr: csrPem })).status, 401);
  t.is((await post(cp, '/api/v1/certificates', { csr: csrPem, joinToken: 'tsr.000000000000.guess' })).status, 401);
  const bad = await post(cp, '/api/v1/certificates', { csr: 'not a csr', joinToken: token });
  t.is(bad.status, 400);
  t.regex(bad.json.error, /csr/);
  t.is((await post(cp, '/api/v1/certificates', { csr: csrPem, joinToken: token, serviceAccount: 'admin' })).status, 400, 'an identity field in the body is refused, not obeyed');
  const tokens = (await cp.api<{ joinTokens: { id: string; serviceAccount: string }[] }>('/api/v1/join-tokens')).joinTokens;
  const id = tokens.find((x) => x.serviceAccount === 'reviews')!.id;
  const revoked = await request(`${cp.adminUrl}/api/v1/join-tokens/${id}`, { method: 'DELETE' });
  await revoked.body.dump();
  t.is(revoked.statusCode, 204);
  t.is((await post(cp, '/api/v1/certificates', { csr: csrPem, joinToken: token })).status, 401, 'a revoked token proves nothing');

  // What was issued is visible, keys are not.
  const listed = await cp.api<{ certificates: { spiffeId: string; serial: string; node: string }[]; authorities: { kind: string }[] }>('/api/v1/certificates');
  t.deepEqual(listed.certificates.map((c) => [c.spiffeId, c.node]), [[SPIFFE('reviews'), 'reviews-1']]);
  t.deepEqual(listed.authorities.map((a) => a.kind), ['root', 'intermediate']);
  t.false(JSON.stringify(listed).includes('PRIVATE KEY'));
  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, /tessera_certificates_issued_total\{proof="join-token"\} 1/);
  t.regex(metrics, /tessera_ca_certificate_expiry_timestamp_seconds\{kind="root"/);

  // The same through the CLI: a token made with `tessera join-token create` works, and
  // `tessera get certificates` shows who holds what until when.
  const cli = (...args: string[]) => execFileSync(process.execPath, [tesseraBin, ...args, '--admin', cp.adminUrl], { encoding: 'utf8' });
  const cliToken = cli('join-token', 'create', '--service-account', 'ratings').trim();
  t.is((await post(cp, '/api/v1/certificates', { csr: csrPem, joinToken: cliToken, node: 'ratings-1' })).json.spiffeId, SPIFFE('ratings'));
  const shown = cli('get', 'certificates');
  t.regex(shown, /ratings-1\s+spiffe:\/\/tessera\.local\/ns\/default\/sa\/ratings\s+[0-9a-f]+\s+\S+\s+(23h|24h|1d)\s+join-token/);
  t.regex(shown, /^root\s+/m);

  // A proxy that claims in its node metadata to be `api` with an SDS socket is served
  // listeners that ask its own agent for secrets, and never any secret itself.
  const ads = connect(cp.xdsPort);
  t.teardown(() => ads.close());
  const stream = ads.sotw();
  const node = { id: 'forger', cluster: 'api', user_agent_name: 'envoy', metadata: { fields: { tessera: { structValue: { fields: { mode: { stringValue: 'sidecar' }, service: { stringValue: 'api' }, sds: { boolValue: true }, inbound: { structValue: { fields: { port: { numberValue: 9080 }, app_port: { numberValue: 8080 } } } } } } } } } };
  for (const typeUrl of ['type.googleapis.com/envoy.config.cluster.v3.Cluster', 'type.googleapis.com/envoy.config.listener.v3.Listener', 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret']) {
    stream.send({ node, type_url: typeUrl, resource_names: typeUrl.endsWith('Secret') ? ['default', 'ROOTCA'] : [] } as any);
  }
  await stream.nth(2, 10_000);
  await stream.quiet(stream.responses.length, 500);
  const types = stream.responses.map((r: any) => r.type_url);
  t.true(types.includes('type.googleapis.com/envoy.config.listener.v3.Listener'));
  t.false(types.some((x: string) => x.endsWith('Secret') && (stream.responses.find((r: any) => r.type_url === x) as any).resources?.length), 'no Secret resource is ever served over xDS');
  const bytes = Buffer.concat(stream.responses.flatMap((r: any) => (r.resources ?? []).map((a: any) => Buffer.from(a.value))));
  t.false(bytes.includes('PRIVATE KEY'), 'no private key in any xDS response');
  t.true(bytes.includes('tessera_sds'), 'the listeners ask the local SDS for secrets');
});

envoyTest.serial('PERMISSIVE takes plaintext and mTLS; switching PERMISSIVE -> STRICT -> DISABLE under ~50 req/s loses no request', async (t) => {
  if (!requireEnvoy(t)) return;
  const { dir, cp, server, client, get } = await mtlsMesh(t, 'PERMISSIVE');
  const inbound = server.inboundPort!;
  t.is(await plaintextRequest(inbound), 200, 'PERMISSIVE takes plaintext');
  t.is((await tlsRequest(inbound, await meshCertificate(t, cp, 'client'))).status, 200, 'PERMISSIVE takes mTLS');
  const callerIdentity = async () => (await get()).body?.headers['x-forwarded-client-cert'];
  t.regex((await callerIdentity()) ?? '', /URI=spiffe:\/\/tessera\.local\/ns\/default\/sa\/client/, 'sidecar to sidecar is mTLS already');

  const load = steadyLoad(client.outboundPort, 'api', 20);
  await new Promise((r) => setTimeout(r, 1000));
  const switches = [Date.now()];
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), meshConfig('STRICT'));
  await waitFor('STRICT to refuse plaintext on the inbound port', async () => (await plaintextRequest(inbound)) !== 200, 20_000, 100);
  await new Promise((r) => setTimeout(r, 1000));
  switches.push(Date.now());
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), meshConfig('DISABLE'));
  await waitFor('DISABLE: callers send plaintext', async () => (await callerIdentity()) === undefined, 20_000, 100);
  t.is(await plaintextRequest(inbound), 200, 'DISABLE takes plaintext');
  await new Promise((r) => setTimeout(r, 1000));
  await load.stop();
  if (load.failures().length) t.log(`switched at ${switches.map((s) => s - load.outcomes[0].at).join(', ')} ms; failures at ${load.failures().map((f) => f.at - load.outcomes[0].at).join(', ')}`);
  t.true(load.outcomes.length > 100, `${load.outcomes.length} requests`);
  t.deepEqual(load.failures(), [], 'no request failed across the switches');
});

envoyTest.serial('rotation: 2-minute certificates renewed under load for 5 minutes, and a new root rolled in meanwhile, with 0 failed requests', async (t) => {
  if (!requireEnvoy(t)) return;
  t.timeout(8 * 60_000);
  const { cp, server, client } = await mtlsMesh(t, 'STRICT', {
    lifetime: '2m',
    cpArgs: ['--ca-rotation-grace', '5s'],
    sidecarArgs: ['--trust-bundle-refresh', '1s'],
  });
  const rootsOf = (pem: string) => pem.split(/(?=-----BEGIN CERTIFICATE-----)/).map((p) => new X509Certificate(p).serialNumber);
  const bundleText = async () => (await request(`${cp.adminUrl}/api/v1/trust-bundle`)).body.text();
  const oldRoots = rootsOf(await bundleText());
  t.is(oldRoots.length, 1);
  const serverNode = `${server.instanceId}.default`;
  const serials = new Set<string>();
  const sample = async () => {
    const { certificates } = await cp.api<{ certificates: { node: string; serial: string }[] }>('/api/v1/certificates');
    const serial = certificates.find((c) => c.node === serverNode)?.serial;
    if (serial) serials.add(serial);
  };
  const sampler = setInterval(() => void sample().catch(() => {}), 2000);
  t.teardown(() => clearInterval(sampler));

  const started = Date.now();
  const load = steadyLoad(client.outboundPort, 'api', 100);
  await new Promise((r) => setTimeout(r, 20_000));
  const rotate = await post(cp, '/api/v1/ca/rotate', {});
  t.is(rotate.status, 202, JSON.stringify(rotate.json));
  t.is(rootsOf(await bundleText()).length, 2, 'the new root is trusted beside the old one at once');
  await new Promise((r) => setTimeout(r, Math.max(0, started + 5 * 60_000 - Date.now())));
  await load.stop();
  clearInterval(sampler);
  await sample();

  t.deepEqual(load.failures(), [], 'no request failed across renewals and the root rotation');
  t.true(load.outcomes.length > 2500, `${load.outcomes.length} requests`);
  t.true(serials.size >= 4, `the server's certificate was renewed: ${serials.size} serials seen`);
  // The old root has been retired (its last leaf expired); the new one alone is trusted,
  // and the server's current certificate chains to it.
  const finalRoots = rootsOf(await bundleText());
  t.is(finalRoots.length, 1);
  t.notDeepEqual(finalRoots, oldRoots);
  const mine = await meshCertificate(t, cp, 'client');
  const presented = await tlsRequest(server.inboundPort!, mine);
  t.is(presented.status, 200, presented.error);
  const intermediate = new X509Certificate(mine.cert.split(/(?=-----BEGIN CERTIFICATE-----)/)[1]);
  t.true(presented.peer!.verify(intermediate.publicKey), "the server's current leaf comes from the new intermediate");
});

envoyTest.serial('--xds-tls: the xDS port speaks TLS with the mesh CA; a sidecar with --xds-tls verifies it and serves, a plaintext client gets nothing', async (t) => {
  if (!requireEnvoy(t)) return;
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), API_SERVICE);
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), meshConfig('STRICT'));
  const cp = await startControlPlaneProcess(t, { configDir: dir, readyTimeoutMs: 60_000, extraArgs: ['--xds-tls', '--xds-tls-names', '127.0.0.1,localhost'] });
  const app = await startBackend(t, 'api-1');
  const server = await startSidecar(t, { service: 'api', appPort: app.port, controlPlane: cp, extraArgs: ['--xds-tls', '--join-token-file', await joinTokenFile(t, cp, 'api')] });
  const client = await startSidecar(t, {
    service: 'client',
    appPort: await freePort(),
    inbound: false,
    controlPlane: cp,
    extraArgs: ['--xds-tls', '--no-register', '--health-check', 'none', '--join-token-file', await joinTokenFile(t, cp, 'client')],
  });
  await Promise.all([server.waitReady(60_000), client.waitReady(60_000)]);
  await waitFor('api through the client sidecar', async () => {
    const res = await request(`http://127.0.0.1:${client.outboundPort}/`, { headers: { host: 'api' } });
    await res.body.dump();
    return res.statusCode === 200;
  }, 30_000, 200);
  // The port presents the control plane's SPIFFE ID, chained to the mesh root.
  const bundle = await (await request(`${cp.adminUrl}/api/v1/trust-bundle`)).body.text();
  const presented = await new Promise<X509Certificate>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: cp.xdsPort, ca: bundle, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerX509Certificate()!);
      socket.destroy();
    });
    socket.once('error', reject);
  });
  t.regex(presented.subjectAltName ?? '', /URI:spiffe:\/\/tessera\.local\/ns\/tessera-system\/sa\/tessera-control-plane/);
  // A plaintext ADS client gets no response at all.
  const ads = connect(cp.xdsPort);
  t.teardown(() => ads.close());
  const stream = ads.sotw();
  stream.send({ node: { id: 'plain', user_agent_name: 'envoy' }, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', resource_names: [] } as any);
  await t.throwsAsync(stream.nth(1, 3000));
});

envoyTest.serial('AuthorizationPolicy over mTLS: ALLOW from reviews only -> frontend 403, reviews 200; DENY wins over ALLOW; a path rule applies', async (t) => {
  if (!requireEnvoy(t)) return;
  const { dir, cp, get } = await mtlsMesh(t, 'STRICT');
  const caller = async (service: string) => {
    const sidecar = await startSidecar(t, {
      service,
      appPort: await freePort(),
      inbound: false,
      controlPlane: cp,
      extraArgs: ['--no-register', '--health-check', 'none', '--join-token-file', await joinTokenFile(t, cp, service)],
    });
    await sidecar.waitReady(60_000);
    return async (p: string) => {
      const res = await request(`http://127.0.0.1:${sidecar.outboundPort}${p}`, { headers: { host: 'api' } });
      await res.body.dump();
      return res.statusCode;
    };
  };
  const [reviews, frontend] = await Promise.all([caller('reviews'), caller('frontend')]);
  await waitFor('both callers reach api', async () => (await reviews('/x')) === 200 && (await frontend('/x')) === 200, 30_000, 200);

  const policies = (rules: string) => fs.writeFileSync(path.join(dir, 'authz.yaml'), rules);
  policies(`apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: api-readers}
spec:
  targetRefs: [{group: "", kind: Service, name: api}]
  action: ALLOW
  rules:
  - from: [{serviceAccounts: [reviews]}]
`);
  await waitFor('the ALLOW policy to apply', async () => (await frontend('/x')) === 403, 20_000, 200);
  t.is(await reviews('/x'), 200, 'reviews is allowed by its SPIFFE identity');
  // A connection opened before the edit drains (Envoy answers it with Connection: close),
  // so the client's sidecar may get one more answer under the old policy.
  await waitFor('the client sidecar, not reviews either, to be refused', async () => (await get()).status === 403, 10_000, 100);

  policies(`apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: api-readers}
spec:
  targetRefs: [{group: "", kind: Service, name: api}]
  action: ALLOW
  rules:
  - from: [{serviceAccounts: [reviews]}]
---
apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-admin}
spec:
  targetRefs: [{group: "", kind: Service, name: api}]
  action: DENY
  rules:
  - from: [{serviceAccounts: [reviews]}]
    to: [{paths: ["/admin*"]}]
`);
  await waitFor('the DENY policy to apply', async () => (await reviews('/admin/users')) === 403, 20_000, 200);
  t.is(await reviews('/reviews/1'), 200, 'the path rule denies only /admin*');
  t.is(await frontend('/reviews/1'), 403);
});
