// `tessera sidecar` and `tessera capture`: flag parsing and exit codes; the work
// is in agent.ts and capture.ts.
import { parseArgs } from 'node:util';
import { EXIT, log, runAgent } from './agent.ts';
import { installCapture, removeCapture } from './capture.ts';
import { CertificateManager, type IdentityProof } from './identity.ts';
import { AgentConfigError, type AgentOptions, CAPTURE_FLAGS, captureOptions, parseDuration, parseSidecarArgs, SIDECAR_USAGE } from './options.ts';

export async function sidecarCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: tessera ${SIDECAR_USAGE}\n`);
    return 0;
  }
  let options: AgentOptions;
  try {
    options = parseSidecarArgs(args);
  } catch (err) {
    if (!(err instanceof AgentConfigError) && !(err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw err;
    process.stderr.write(`tessera sidecar: ${(err as Error).message}\n\nusage: tessera ${SIDECAR_USAGE}\n`);
    return EXIT.usage;
  }
  return runAgent(options);
}

export function captureCommand(args: string[]): number {
  const { values } = parseArgs({ args, options: { ...CAPTURE_FLAGS, remove: { type: 'boolean' } } });
  if (values.remove) {
    removeCapture();
    log('capture rules removed');
    return 0;
  }
  const options = captureOptions(values as Record<string, string | undefined>, process.env);
  installCapture(options);
  log(`capture rules installed (outbound -> ${options.outboundPort}, inbound -> ${options.inboundCapturePort}, proxy uid ${options.proxyUid})`);
  return 0;
}

export const CERTS_USAGE = 'certs --cert-dir DIR --join-token-file F|--kube-token-file F [--control-plane URL] [--node-id ID] [--trust-bundle-refresh 15s] [--once]';

/** `tessera certs`: a workload certificate kept renewed in files, for proxyless gRPC
 *  clients (their bootstrap's file_watcher reads them, gRFC A29). The key is made here
 *  and written 0600; `--once` writes the first certificate and exits (an init step). */
export async function certsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'cert-dir': { type: 'string' },
      'join-token-file': { type: 'string' },
      'kube-token-file': { type: 'string' },
      'control-plane': { type: 'string' },
      'node-id': { type: 'string' },
      'trust-bundle-refresh': { type: 'string' },
      once: { type: 'boolean' },
    },
  });
  const errors: string[] = [];
  if (!values['cert-dir']) errors.push('--cert-dir is required');
  const joinTokenFile = values['join-token-file'] ?? process.env.TESSERA_JOIN_TOKEN_FILE;
  const kubeTokenFile = values['kube-token-file'] ?? process.env.TESSERA_KUBE_TOKEN_FILE;
  if (!joinTokenFile === !kubeTokenFile) errors.push('give one proof of identity: --join-token-file or --kube-token-file');
  let refreshMs = 15_000;
  try {
    if (values['trust-bundle-refresh']) refreshMs = parseDuration(values['trust-bundle-refresh']);
  } catch (err) {
    errors.push(`--trust-bundle-refresh: ${(err as Error).message}`);
  }
  if (errors.length) {
    process.stderr.write(`tessera certs: ${errors.join('\n')}\n\nusage: tessera ${CERTS_USAGE}\n`);
    return EXIT.usage;
  }
  const proof: IdentityProof = joinTokenFile ? { joinTokenFile } : { kubernetesTokenFile: kubeTokenFile! };
  const manager = new CertificateManager({
    controlPlane: (values['control-plane'] ?? process.env.TESSERA_CONTROL_PLANE ?? 'http://127.0.0.1:18080').replace(/\/+$/, ''),
    proof,
    node: values['node-id'] ?? `certs-${process.pid}`,
    bundleRefreshMs: refreshMs,
    certDir: values['cert-dir'],
    log,
  });
  try {
    const cert = await manager.start();
    log(`certificate: ${cert.spiffeId} serial ${cert.serial}, valid until ${cert.notAfter.toISOString()}, in ${values['cert-dir']}`);
  } catch (err) {
    log((err as Error).message);
    manager.stop();
    return EXIT.startFailed;
  }
  if (values.once) {
    manager.stop();
    return EXIT.ok;
  }
  // Renewal timers are unref'd: this keeps the process up until a signal.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  clearInterval(keepAlive);
  manager.stop();
  return EXIT.ok;
}
