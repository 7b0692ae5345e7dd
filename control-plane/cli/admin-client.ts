// Commands that read the admin API: `get services|proxies|routes|certificates`, `proxy-status`,
// `config-dump`; and `join-token create|list|revoke`, the one that hands out proofs of identity.
import { parseArgs } from 'node:util';
import { request } from 'undici';

export interface AdminTarget {
  adminUrl: string;
  token?: string;
}

export async function adminGet<T>(target: AdminTarget, path: string, method: 'GET' | 'POST' = 'GET'): Promise<T> {
  return adminCall<T>(target, method, path);
}

export async function adminCall<T>(target: AdminTarget, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const res = await request(target.adminUrl.replace(/\/$/, '') + path, {
    method,
    headers: { ...(target.token ? { authorization: `Bearer ${target.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  }).catch((err: Error) => {
    throw new Error(`cannot reach the admin API at ${target.adminUrl}: ${err.message}`);
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) {
    let message = text;
    try {
      message = JSON.parse(text).error ?? text;
    } catch {
      /* not JSON: keep the text */
    }
    throw new Error(`${method} ${path}: ${res.statusCode} ${message}`);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Left-aligned columns, like kubectl. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export async function adminCommand(command: string, args: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      admin: { type: 'string' },
      output: { type: 'string', short: 'o' },
      'service-account': { type: 'string' },
      namespace: { type: 'string' },
      ttl: { type: 'string' },
    },
  });
  const target: AdminTarget = {
    adminUrl: values.admin ?? process.env.TESSERA_ADMIN ?? 'http://127.0.0.1:18080',
    token: process.env.TESSERA_TOKEN,
  };
  const json = values.output === 'json';
  if (command === 'get') {
    const what = positionals[0];
    if (what === 'services') {
      const { getServicesCommand } = await import('./get.ts');
      return getServicesCommand(args.slice(1), target, out);
    }
    if (what === 'proxies') return printProxies(target, json, out);
    if (what === 'routes') return printRoutes(target, json, out);
    if (what === 'certificates') return printCertificates(target, json, out);
    if (what === 'canaries') {
      const { printCanaries } = await import('./canary.ts');
      return printCanaries(target, json, out);
    }
    if (what === 'config') {
      const { printConfig } = await import('./config-source.ts');
      return printConfig(target, json, out);
    }
    throw new Error(`get what? one of services, proxies, routes, certificates, canaries, config (got ${JSON.stringify(what)})`);
  }
  if (command === 'join-token') {
    const action = positionals[0];
    if (action === 'create') {
      const serviceAccount = values['service-account'];
      if (!serviceAccount) throw new Error('join-token create needs --service-account (the identity the token proves)');
      const created = await adminCall<{ token: string; id: string; expiresAt: string }>(target, 'POST', '/api/v1/join-tokens', {
        serviceAccount,
        ...(values.namespace ? { namespace: values.namespace } : {}),
        ...(values.ttl ? { ttl: values.ttl } : {}),
      });
      // The token alone on stdout, so `> token-file` is all it takes.
      out.write(json ? `${JSON.stringify(created, null, 2)}\n` : `${created.token}\n`);
      return 0;
    }
    if (action === 'list') {
      const { joinTokens } = await adminGet<{ joinTokens: { id: string; namespace: string; serviceAccount: string; expiresAt: string }[] }>(target, '/api/v1/join-tokens');
      if (json) out.write(`${JSON.stringify(joinTokens, null, 2)}\n`);
      else out.write(table(['ID', 'NAMESPACE', 'SERVICE ACCOUNT', 'EXPIRES'], joinTokens.map((j) => [j.id, j.namespace, j.serviceAccount, j.expiresAt])));
      return 0;
    }
    if (action === 'revoke') {
      if (!positionals[1]) throw new Error('join-token revoke needs the token id (see `tessera join-token list`)');
      await adminCall(target, 'DELETE', `/api/v1/join-tokens/${encodeURIComponent(positionals[1])}`);
      out.write(`revoked ${positionals[1]}\n`);
      return 0;
    }
    throw new Error(`join-token what? one of create, list, revoke (got ${JSON.stringify(action)})`);
  }
  if (command === 'config') {
    const { steerConfigSource } = await import('./config-source.ts');
    return steerConfigSource(target, positionals[0], json, out);
  }
  if (command === 'proxy-status') return printProxies(target, json, out);
  if (command === 'config-dump') {
    const node = positionals[0];
    if (!node) throw new Error('config-dump needs a node id (see `tessera get proxies`)');
    const dump = await adminGet(target, `/api/v1/proxies/${encodeURIComponent(node)}/config`);
    out.write(JSON.stringify(dump, null, 2) + '\n');
    return 0;
  }
  throw new Error(`unknown command ${command}`);
}

interface ProxyStatusView {
  nodeId: string;
  service?: string;
  protocol: string;
  connectedSince: string;
  types: Record<string, { sentVersion?: string; ackedVersion?: string; lastNack?: { version: string; error: string } }>;
}

async function printProxies(target: AdminTarget, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const { proxies } = await adminGet<{ proxies: ProxyStatusView[] }>(target, '/api/v1/proxies');
  if (json) {
    out.write(JSON.stringify(proxies, null, 2) + '\n');
    return 0;
  }
  const state = (p: ProxyStatusView, type: string) => {
    const s = p.types[type];
    if (!s) return '-';
    if (s.lastNack && s.lastNack.version === s.sentVersion) return 'NACKED';
    if (s.sentVersion && s.sentVersion === s.ackedVersion) return 'SYNCED';
    return s.sentVersion ? 'STALE' : '-';
  };
  const rows = proxies.map((p) => [p.nodeId, p.service ?? '', p.protocol, ...['CDS', 'LDS', 'EDS', 'RDS'].map((t) => state(p, t)), p.connectedSince]);
  out.write(table(['NODE', 'SERVICE', 'XDS', 'CDS', 'LDS', 'EDS', 'RDS', 'CONNECTED SINCE'], rows));
  for (const p of proxies) {
    for (const [type, s] of Object.entries(p.types)) {
      if (s.lastNack) out.write(`\n${p.nodeId} ${type} last NACK (version ${s.lastNack.version}): ${s.lastNack.error}\n`);
    }
  }
  return 0;
}

async function printRoutes(target: AdminTarget, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  // biome-ignore lint/suspicious/noExplicitAny: a resource's spec is only printed
  const config = await adminGet<{ resources: { kind: string; namespace: string; name: string; source?: string; spec: any }[] }>(target, '/api/v1/config');
  const routes = config.resources.filter((r) => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute');
  if (json) {
    out.write(JSON.stringify(routes, null, 2) + '\n');
    return 0;
  }
  const rows = routes.map((r) => [
    r.kind,
    `${r.namespace}/${r.name}`,
    (r.spec.parents ?? []).map((p: { service: string; port?: number }) => p.service + (p.port ? `:${p.port}` : '')).join(','),
    (r.spec.rules ?? [])
      .map((rule: { backends: { service: string; weight: number }[] }) => rule.backends.map((b) => `${b.service}=${b.weight}`).join('/'))
      .join(' | '),
    r.source ?? '',
  ]);
  out.write(table(['KIND', 'NAME', 'PARENTS', 'BACKENDS', 'SOURCE'], rows));
  return 0;
}

interface CertificatesView {
  authorities: { kind: string; subject: string; serial: string; notAfter: string; retiring?: string }[];
  certificates: { spiffeId: string; serial: string; notAfter: string; node?: string; proof: string }[];
}

async function printCertificates(target: AdminTarget, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const view = await adminGet<CertificatesView>(target, '/api/v1/certificates');
  if (json) {
    out.write(JSON.stringify(view, null, 2) + '\n');
    return 0;
  }
  const left = (notAfter: string) => {
    const s = Math.round((Date.parse(notAfter) - Date.now()) / 1000);
    return s > 86_400 ? `${Math.floor(s / 86_400)}d` : s > 3600 ? `${Math.floor(s / 3600)}h` : `${Math.max(0, Math.floor(s / 60))}m`;
  };
  out.write(
    table(
      ['NODE', 'IDENTITY', 'SERIAL', 'NOT AFTER', 'LEFT', 'PROOF'],
      view.certificates.map((c) => [c.node ?? '-', c.spiffeId, c.serial, c.notAfter, left(c.notAfter), c.proof]),
    ),
  );
  out.write('\n');
  out.write(
    table(
      ['CA', 'SERIAL', 'NOT AFTER', 'LEFT', 'NOTE'],
      view.authorities.map((a) => [a.kind, a.serial, a.notAfter, left(a.notAfter), a.retiring ? `retiring at ${a.retiring}` : '']),
    ),
  );
  return 0;
}
