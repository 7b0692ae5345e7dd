// `tessera status [VERSION] [--wait] [--timeout 30s]`: whether a change reached every
// proxy it affects. With --wait it blocks until no affected proxy is pending, then
// exits 0 if all ACKed, 1 naming those that NACKed or disconnected, 2 on timeout: a
// step a CI/CD pipeline can run after applying a change.
import { parseArgs } from 'node:util';
import { adminGet, table, type AdminTarget } from './admin-client.ts';

interface ChangeView {
  version: string;
  kind: string;
  appliedAt: string;
  services: string[];
  note?: { configVersion?: string; files?: string[] };
  affected: number;
  acked: number;
  nacked: number;
  pending: number;
  disconnected: number;
  proxies: { nodeId: string; status: string; types: Record<string, { status: string; error?: string; latencyMs?: number }> }[];
}

export async function statusCommand(args: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      admin: { type: 'string' },
      output: { type: 'string', short: 'o' },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
    },
  });
  const target: AdminTarget = { adminUrl: values.admin ?? process.env.TESSERA_ADMIN ?? 'http://127.0.0.1:18080', token: process.env.TESSERA_TOKEN };
  const version = positionals[0] ?? 'latest';
  const timeoutMs = parseTimeout(values.timeout ?? '30s');
  const deadline = Date.now() + timeoutMs;
  let change = await adminGet<ChangeView>(target, `/api/v1/changes/${encodeURIComponent(version)}`);
  while (values.wait && change.pending > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    change = await adminGet<ChangeView>(target, `/api/v1/changes/${encodeURIComponent(change.version)}`);
  }
  if (values.output === 'json') out.write(`${JSON.stringify(change, null, 2)}\n`);
  else print(change, out);
  if (!values.wait) return 0;
  const failed = change.proxies.filter((p) => p.status === 'nacked' || p.status === 'disconnected');
  if (failed.length > 0) {
    process.stderr.write(`change ${change.version} was not applied by ${failed.map((p) => `${p.nodeId} (${p.status})`).join(', ')}\n`);
    return 1;
  }
  if (change.pending > 0) {
    const pending = change.proxies.filter((p) => p.status === 'pending').map((p) => p.nodeId);
    process.stderr.write(`change ${change.version}: ${pending.length} proxies had not answered after ${timeoutMs} ms: ${pending.join(', ')}\n`);
    return 2;
  }
  return 0;
}

function print(c: ChangeView, out: NodeJS.WritableStream): void {
  const what = c.kind === 'config' ? `config ${c.note?.configVersion ?? ''}`.trim() : c.services.length > 0 ? `${c.kind} of ${c.services.join(', ')}` : c.kind;
  out.write(`change ${c.version} (${what}) applied ${c.appliedAt}\n`);
  out.write(`${c.affected} proxies affected: ${c.acked} ACKed, ${c.nacked} NACKed, ${c.pending} pending, ${c.disconnected} disconnected\n`);
  if (c.proxies.length === 0) return;
  const rows = c.proxies.map((p) => {
    const errors = Object.entries(p.types)
      .filter(([, t]) => t.error)
      .map(([type, t]) => `${type}: ${t.error}`);
    return [p.nodeId, p.status.toUpperCase(), Object.keys(p.types).join(','), errors.join('; ')];
  });
  out.write(table(['NODE', 'STATUS', 'TYPES', 'ERROR'], rows));
}

function parseTimeout(text: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(text);
  if (!m) throw new Error(`--timeout must be a duration such as 500ms, 30s or 2m, not ${JSON.stringify(text)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
}
