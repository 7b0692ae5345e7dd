// `tessera get config` (where the config comes from, what is served, what blocks the
// newest change) and `tessera config suspend|resume|sync` (the git config source).
import { adminGet, type AdminTarget } from './admin-client.ts';

interface GitStatusView {
  kind: 'git';
  url: string;
  branch: string;
  path: string;
  intervalSeconds: number;
  suspended: boolean;
  fetchedRevision?: string;
  fetchedAt?: string;
  appliedRevision?: string;
  appliedAt?: string;
  lastError?: { kind: string; message: string; at: string };
}

interface ConfigView {
  version?: string;
  appliedAt?: string;
  revision?: string;
  source?: GitStatusView | { kind: 'dir'; path: string };
  files: string[];
  errors: { file: string; line: number; column?: number; message: string; revision?: string }[];
}

export async function printConfig(target: AdminTarget, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const config = await adminGet<ConfigView>(target, '/api/v1/config');
  if (json) {
    out.write(JSON.stringify({ ...config, resources: undefined }, null, 2) + '\n');
    return 0;
  }
  const rows: [string, string][] = [];
  const source = config.source;
  if (source?.kind === 'git') {
    rows.push(['SOURCE', `git ${source.url}#${source.branch}${source.path ? `:${source.path}` : ''} (every ${source.intervalSeconds} s)`]);
    rows.push(['STATE', source.suspended ? 'suspended' : 'polling']);
    rows.push(['FETCHED', source.fetchedRevision ? `${source.fetchedRevision} at ${source.fetchedAt}` : '(not yet)']);
    rows.push(['APPLIED', source.appliedRevision ? `${source.appliedRevision} at ${source.appliedAt}` : '(nothing yet)']);
    if (source.lastError) rows.push(['ERROR', `${source.lastError.message} (${source.lastError.kind}, ${source.lastError.at})`]);
  } else if (source) rows.push(['SOURCE', `dir ${source.path}`]);
  rows.push(['VERSION', config.version ? `${config.version} at ${config.appliedAt} (${config.files.length} files)` : '(no config served)']);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) out.write(`${k.padEnd(width)}  ${v}\n`);
  if (config.errors.length > 0) {
    out.write(`\nthe newest change is rejected${config.errors[0].revision ? ` (revision ${config.errors[0].revision})` : ''}:\n`);
    for (const e of config.errors) out.write(`  ${e.file}:${e.line}${e.column ? `:${e.column}` : ''}: ${e.message}\n`);
  }
  return 0;
}

export async function steerConfigSource(target: AdminTarget, action: string | undefined, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  if (action !== 'suspend' && action !== 'resume' && action !== 'sync') {
    throw new Error(`config what? one of suspend, resume, sync (got ${JSON.stringify(action)})`);
  }
  const { source } = await adminGet<{ source: GitStatusView }>(target, `/api/v1/config/${action}`, 'POST');
  if (json) {
    out.write(JSON.stringify(source, null, 2) + '\n');
    return 0;
  }
  out.write(
    `${source.url}#${source.branch}: ${source.suspended ? 'suspended' : 'polling'}; fetched ${source.fetchedRevision ?? '-'}, applied ${source.appliedRevision ?? '-'}` +
      `${source.lastError ? `; error: ${source.lastError.message}` : ''}\n`,
  );
  return source.lastError && action === 'sync' ? 1 : 0;
}
