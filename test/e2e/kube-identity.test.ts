// Kubernetes service-account tokens as proof of identity, reviewed by a real
// kube-apiserver (TokenReview): the certificate names the token's service account.
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { request } from 'undici';
import { createKeyAndCsr } from '../../sidecar/agent/identity.ts';
import { createNamespace, kubeTest, requireKubeApiserver, startKubeApiserver } from '../support/kube-apiserver.ts';
import { startControlPlaneProcess, tempDir } from '../support/mesh.ts';

kubeTest.serial('a pod service-account token (audience tessera) gets a certificate for that service account; other tokens get 401', async (t) => {
  if (!requireKubeApiserver(t)) return;
  t.timeout(5 * 60_000);
  const kube = await startKubeApiserver(t);
  await createNamespace(kube.client, 'shop');
  await kube.client.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cart', namespace: 'shop' } });
  const tokenFor = async (audiences: string[]) => {
    const res = await kube.client.call('POST', '/api/v1/namespaces/shop/serviceaccounts/cart/token', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences, expirationSeconds: 600 },
    });
    t.is(res.status, 201, JSON.stringify(res.body));
    return res.body.status.token as string;
  };

  // The control plane reviews tokens with a credential of its own (here the test's admin token).
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'reviewer-token'), kube.adminToken);
  fs.writeFileSync(path.join(dir, 'kube-ca.pem'), kube.ca);
  const cp = await startControlPlaneProcess(t, {
    extraArgs: ['--kube-api', kube.url, '--kube-token-file', path.join(dir, 'reviewer-token'), '--kube-ca-file', path.join(dir, 'kube-ca.pem'), '--kube-audience', 'tessera'],
  });
  const ask = async (kubernetesToken: string) => {
    const { csrPem } = await createKeyAndCsr();
    const res = await request(`${cp.adminUrl}/api/v1/certificates`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ csr: csrPem, kubernetesToken, node: 'cart-7d9f.shop' }),
    });
    return { status: res.statusCode, json: (await res.body.json()) as any };
  };

  const good = await ask(await tokenFor(['tessera']));
  t.is(good.status, 200, JSON.stringify(good.json));
  t.is(new X509Certificate(good.json.certificateChain.split(/(?=-----BEGIN CERTIFICATE-----)/)[0]).subjectAltName, 'URI:spiffe://tessera.local/ns/shop/sa/cart');
  const listed = await cp.api<{ certificates: { proof: string; node: string }[] }>('/api/v1/certificates');
  t.deepEqual(listed.certificates.map((c) => [c.node, c.proof]), [['cart-7d9f.shop', 'kubernetes']]);

  // A token for another audience (the API server's own), a forged one, and one whose
  // service account is gone are all refused by the API server's review.
  const otherAudience = await ask(await tokenFor(['https://kubernetes.default.svc.cluster.local']));
  t.is(otherAudience.status, 401, JSON.stringify(otherAudience.json));
  const forged = await ask(`${(await tokenFor(['tessera'])).slice(0, -4)}AAAA`);
  t.is(forged.status, 401);
  const orphan = await tokenFor(['tessera']);
  t.is((await kube.client.call('DELETE', '/api/v1/namespaces/shop/serviceaccounts/cart')).status, 200);
  const gone = await ask(orphan);
  t.is(gone.status, 401, JSON.stringify(gone.json));
  t.regex(gone.json.error, /did not authenticate/);
});
