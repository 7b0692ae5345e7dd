// A real kube-apiserver (built from test/kube/apiserver by test/kube/build-apiserver.sh) on a
// real etcd, with certificates made here, a static admin token and RBAC. No kubelet or
// controllers run: objects are stored (and admission webhooks called) but nothing runs.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { Agent, request } from 'undici';
import { makeCa, makeServerCert, makeServiceAccountKeys } from './certs.ts';
import { findEtcd, startEtcd } from './etcd.ts';
import { repoRoot, tempDir } from './mesh.ts';
import { freePort, requireTool, startProcess, testNeeding, waitFor, type Owner, type Started } from './processes.ts';

/** Where build-apiserver.sh puts the binary: keyed by the wrapper module's files. */
export function kubeApiserverPath(): string {
  if (process.env.TESSERA_KUBE_APISERVER) return process.env.TESSERA_KUBE_APISERVER;
  const module = path.join(repoRoot, 'test/kube/apiserver');
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go']) hash.update(fs.readFileSync(path.join(module, file)));
  const home = process.env.HOME ?? '/root';
  const cache = process.env.TESSERA_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(home, '.cache'), 'tessera');
  return path.join(cache, `kube-apiserver-${hash.digest('hex').slice(0, 16)}`);
}

export function findKubeApiserver(): string | undefined {
  const file = kubeApiserverPath();
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return file;
  } catch {
    return undefined;
  }
}

/** Declares tests that need the kube-apiserver binary and etcd (skipped when missing outside CI). */
export const kubeTest = testNeeding({ 'kube-apiserver': findKubeApiserver() !== undefined, etcd: findEtcd() !== undefined });

export function requireKubeApiserver(t: ExecutionContext): boolean {
  return requireTool(t, findKubeApiserver() !== undefined, `kube-apiserver (${kubeApiserverPath()})`, 'bash test/kube/build-apiserver.sh');
}

export interface KubeResponse<T = any> {
  status: number;
  body: T;
}

/** A small client for the API server's REST API: JSON over HTTPS with the admin token. */
export class KubeClient {
  private readonly dispatcher: Agent;
  constructor(
    readonly url: string,
    private readonly token: string,
    ca: string,
  ) {
    this.dispatcher = new Agent({ connect: { ca } });
  }

  async call<T = any>(method: string, apiPath: string, body?: unknown): Promise<KubeResponse<T>> {
    const res = await request(`${this.url}${apiPath}`, {
      method: method as 'GET',
      dispatcher: this.dispatcher,
      headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // /readyz and friends answer plain text
    }
    return { status: res.statusCode, body: parsed as T };
  }

  /** Creates `object` at its collection; throws with the API server's message unless 201/200. */
  async create<T = any>(object: KubeObject, options: { dryRun?: boolean } = {}): Promise<T> {
    const query = new URLSearchParams({ fieldValidation: 'Strict' });
    if (options.dryRun) query.set('dryRun', 'All');
    const res = await this.call<T>('POST', `${collectionPath(object)}?${query}`, object);
    if (res.status !== 201 && res.status !== 200) {
      throw new KubeApiError(res.status, `creating ${object.kind} ${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? object.metadata?.generateName ?? ''}: ${res.status} ${(res.body as { message?: string })?.message ?? JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  async get<T = any>(object: KubeObject): Promise<T> {
    const res = await this.call<T>('GET', `${collectionPath(object)}/${object.metadata!.name}`);
    if (res.status !== 200) throw new KubeApiError(res.status, `getting ${object.kind} ${object.metadata?.name}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; generateName?: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);

export function collectionPath(object: KubeObject): string {
  const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const plural = `${object.kind.toLowerCase()}s`;
  if (CLUSTER_SCOPED.has(object.kind)) return `${base}/${plural}`;
  return `${base}/namespaces/${object.metadata?.namespace ?? 'default'}/${plural}`;
}

export interface KubeApiserver {
  client: KubeClient;
  url: string;
  /** The API server's serving CA (PEM), e.g. for a kubeconfig. */
  ca: string;
  /** A system:masters token, for a component that needs one (a TokenReview caller). */
  adminToken: string;
  process: Started;
}

/** Starts etcd and kube-apiserver on free loopback ports; `owner` kills both by PID. */
export async function startKubeApiserver(owner: Owner): Promise<KubeApiserver> {
  const dir = tempDir(owner, 'tessera-kube-');
  const etcd = await startEtcd(owner);
  const ca = makeCa(dir, 'kube-ca');
  const serving = makeServerCert(dir, 'kube-apiserver', ca, ['IP:127.0.0.1', 'DNS:localhost']);
  const sa = makeServiceAccountKeys(dir);
  const token = randomBytes(24).toString('hex');
  const tokenFile = path.join(dir, 'tokens.csv');
  fs.writeFileSync(tokenFile, `${token},tessera-test-admin,1,system:masters\n`, { mode: 0o600 });
  const port = await freePort();
  const binary = findKubeApiserver();
  if (!binary) throw new Error(`kube-apiserver not found at ${kubeApiserverPath()} (bash test/kube/build-apiserver.sh)`);
  const proc = startProcess(owner, binary, [
    `--etcd-servers=http://${etcd.endpoint}`,
    `--etcd-prefix=/registry-${port}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    // The `kubernetes` Service's endpoint reconciler refuses loopback addresses; nothing here needs it.
    '--endpoint-reconciler-type=none',
    `--cert-dir=${path.join(dir, 'certs')}`,
    `--tls-cert-file=${serving.cert}`,
    `--tls-private-key-file=${serving.key}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${sa.publicKey}`,
    `--service-account-signing-key-file=${sa.privateKey}`,
    `--token-auth-file=${tokenFile}`,
    '--authorization-mode=RBAC',
    '--service-cluster-ip-range=10.96.0.0/16',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=0',
  ]);
  const caPem = fs.readFileSync(ca.cert, 'utf8');
  const url = `https://127.0.0.1:${port}`;
  const client = new KubeClient(url, token, caPem);
  owner.teardown(() => client.close());
  // ~20 s on an idle machine; much longer when the machine is loaded.
  const exited = new Promise<never>((_, reject) =>
    proc.child.once('exit', (code, signal) => reject(new Error(`kube-apiserver exited (${code ?? signal}) before it was ready:\n${proc.output().slice(-4000)}`))),
  );
  exited.catch(() => {}); // only the race below reports it
  await Promise.race([
    exited,
    waitFor('kube-apiserver /readyz', async () => (await client.call('GET', '/readyz')).status === 200, 180_000, 500),
  ]);
  return { client, url, ca: caPem, adminToken: token, process: proc };
}

/** A namespace with the `default` ServiceAccount that pods need (no controller makes it here). */
export async function createNamespace(client: KubeClient, name: string, labels: Record<string, string> = {}): Promise<void> {
  await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  await createDefaultServiceAccount(client, name);
}

export async function createDefaultServiceAccount(client: KubeClient, namespace: string): Promise<void> {
  try {
    await client.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } });
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 409)) throw err;
  }
}
