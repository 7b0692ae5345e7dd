// `tessera inject` (the mutation over manifests) and `tessera injector` (the admission webhook).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { ManifestError } from '../../sidecar/injection/errors.ts';
import { injectManifest } from '../../sidecar/injection/manifest.ts';
import type { InjectOptions } from '../../sidecar/injection/mutate.ts';
import { DEFAULT_CONTROL_PLANE, DEFAULT_IMAGE, DEFAULT_XDS, PROXY_UID } from '../../sidecar/injection/names.ts';
import { startInjector } from '../../sidecar/injection/webhook.ts';
import { UsageError } from './main.ts';

const proxyFlags = {
  image: { type: 'string' },
  'control-plane': { type: 'string' },
  xds: { type: 'string' },
  'legacy-sidecar': { type: 'boolean' },
  'proxy-uid': { type: 'string' },
} as const;

function injectOptions(values: { image?: string; 'control-plane'?: string; xds?: string; 'legacy-sidecar'?: boolean; 'proxy-uid'?: string }): InjectOptions {
  const controlPlane = values['control-plane'] ?? DEFAULT_CONTROL_PLANE;
  if (!/^https?:\/\/[^/]+/.test(controlPlane)) throw new UsageError(`--control-plane must be an http(s) URL, got ${JSON.stringify(controlPlane)}`);
  const xds = values.xds ?? DEFAULT_XDS;
  for (const part of xds.split(',')) {
    if (!/^[^:,\s]+:\d{1,5}$/.test(part.trim())) throw new UsageError(`--xds must be HOST:PORT[,HOST:PORT…], got ${JSON.stringify(xds)}`);
  }
  const uid = Number(values['proxy-uid'] ?? PROXY_UID);
  if (!Number.isInteger(uid) || uid < 1) throw new UsageError(`--proxy-uid must be a positive integer, got ${JSON.stringify(values['proxy-uid'])}`);
  const image = values.image ?? DEFAULT_IMAGE;
  if (image.trim() === '') throw new UsageError('--image must not be empty');
  return { image, controlPlane, xds, proxyUid: uid, legacySidecar: values['legacy-sidecar'] ?? false };
}

export function injectCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: { ...proxyFlags, filename: { type: 'string', short: 'f' }, namespace: { type: 'string', short: 'n' }, quiet: { type: 'boolean', short: 'q' } },
  });
  if (!values.filename) throw new UsageError('-f MANIFEST.yaml (or -f - for standard input) is required');
  const file = values.filename === '-' ? '<stdin>' : values.filename;
  const text = values.filename === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(values.filename, 'utf8');
  try {
    const { output, report } = injectManifest(text, file, { ...injectOptions(values), namespace: values.namespace ?? 'default' });
    process.stdout.write(output);
    if (!values.quiet) for (const line of report) process.stderr.write(`tessera inject: ${line}\n`);
    return 0;
  } catch (err) {
    // Nothing goes to stdout: a half-injected manifest must never be applied by accident.
    if (err instanceof ManifestError) {
      for (const line of err.messages) process.stderr.write(`${line}\n`);
      return 1;
    }
    throw err;
  }
}

export async function injectorCommand(args: string[]): Promise<undefined> {
  const { values } = parseArgs({
    args,
    options: { ...proxyFlags, listen: { type: 'string' }, 'tls-cert-file': { type: 'string' }, 'tls-key-file': { type: 'string' } },
  });
  if (!values['tls-cert-file'] || !values['tls-key-file']) throw new UsageError('--tls-cert-file and --tls-key-file are required (the API server calls webhooks over HTTPS only)');
  const listen = values.listen ?? '0.0.0.0:9443';
  const match = /^(.*):(\d{1,5})$/.exec(listen);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new UsageError(`--listen must be ADDR:PORT, got ${JSON.stringify(listen)}`);
  const host = match[1].replace(/^\[(.*)\]$/, '$1') || '0.0.0.0';
  const injector = await startInjector({ host, port, certFile: values['tls-cert-file'], keyFile: values['tls-key-file'], inject: injectOptions(values) });
  const stop = () => {
    injector.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return undefined;
}
