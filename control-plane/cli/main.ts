// The `tessera` command: dispatches to one module per command.
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import YAML from 'yaml';
import { envoyBootstrap, grpcBootstrap, parseStatsPort, parseXdsAddresses } from '../../sidecar/bootstrap/bootstrap.ts';
import { isDuration, parseDuration } from '../config/duration.ts';
import { DEFAULT_GIT_INTERVAL_MS, isGitSource, MAX_GIT_INTERVAL_MS, MIN_GIT_INTERVAL_MS, parseGitSource, type GitSourceSpec } from '../config/git-url.ts';

const USAGE = `usage: tessera <command> [options]

commands:
  control-plane --config DIR|git+URL[#BRANCH][:PATH] [--git-interval 30s] [--xds-port 18000] [--admin-port 18080]
                [--address 0.0.0.0] [--store memory|file:PATH|etcd://HOST:PORT,...] [--admin-token-file F]
                [--ca-dir DIR] [--ca-cert F --ca-key F] [--ca-rotation-grace 60s] [--xds-tls [--xds-tls-names N,…]]
                [--kube-api URL --kube-token-file F [--kube-ca-file F] [--kube-audience A,…]]
                [--comparator-port P [--comparator-address IP]]   (ParallelRun Canaries)
  validate DIR
  analyze DIR [--strict] | analyze --admin URL
  bootstrap --service S --node-id ID [--xds HOST:PORT[,…]] [--xds-mode sotw|delta]
            [--admin-port 15000] [--outbound-port 15001] [--inbound-port P --app-port A] [--zone Z]
            [--stats-flush-interval 5s] [--stats-port 15090|none] [-o json|yaml]
  bootstrap --grpc --node-id ID [--xds HOST:PORT[,…]] [--zone Z] [--cert-dir DIR]   (proxyless gRPC clients)
  certs --cert-dir DIR --join-token-file F|--kube-token-file F [--control-plane URL] [--once]
        (keeps cert.pem, key.pem, ca.pem renewed for proxyless gRPC clients)
  sidecar --service S --app-port A [--inbound-port P] [--control-plane URL] [--xds HOST:PORT,…] [--capture] …
          (tessera sidecar --help for every option)
  capture [--inbound-ports 9080,…|*] [--exclude-inbound-ports …] [--exclude-outbound-ports …]
          [--exclude-outbound-ip-ranges CIDR,…] [--proxy-uid 1337] [--outbound-port 15001]
          [--inbound-capture-port 15006] [--remove]
  get services|proxies|routes|certificates|canaries [--admin URL] [-o json]
  join-token create --service-account SA [--namespace NS] [--ttl 720h] | join-token list | join-token revoke ID
  canary list|status NAME|pause NAME|resume NAME|promote NAME|abort NAME [--namespace NS] [--admin URL] [--admin-token-file F]
  config suspend|resume|sync [--admin URL]   (the git config source; token from TESSERA_TOKEN)
  proxy-status [--admin URL]
  status [VERSION] [--wait] [--timeout 30s] [--admin URL] [-o json]
  config-dump NODE [--admin URL]
  inject -f MANIFEST.yaml|- [--namespace NS] [--legacy-sidecar] [--image I] [--control-plane URL] [--xds HOST:PORT,…]
  injector --listen ADDR:PORT --tls-cert-file F --tls-key-file F [--legacy-sidecar] [--image I] [--control-plane URL] [--xds HOST:PORT,…]
`;

export class UsageError extends Error {
  readonly code = 'TESSERA_ERR_USAGE';
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    const code = await run(command, rest);
    if (code !== undefined) process.exitCode = code;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`tessera ${command ?? ''}: ${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`tessera ${command ?? ''}: ${(err as Error).message}\n`);
      process.exitCode = 1;
      // A control plane that failed to start may leave clients retrying (etcd's
      // reconnect timers): exit now rather than hang half-started.
      if (command === 'control-plane') process.stderr.write('', () => process.exit(1));
    }
  }
}

async function run(command: string | undefined, args: string[]): Promise<number | undefined> {
  switch (command) {
    case 'control-plane':
      return controlPlane(args);
    case 'validate': {
      const { validateCommand } = await import('./validate.ts');
      return validateCommand(args);
    }
    case 'bootstrap':
      return bootstrap(args);
    case 'sidecar': {
      const { sidecarCommand } = await import('../../sidecar/agent/cli.ts');
      return sidecarCommand(args);
    }
    case 'capture': {
      const { captureCommand } = await import('../../sidecar/agent/cli.ts');
      return captureCommand(args);
    }
    case 'certs': {
      const { certsCommand } = await import('../../sidecar/agent/cli.ts');
      return certsCommand(args);
    }
    case 'analyze': {
      const { analyzeCommand } = await import('./analyze.ts');
      return analyzeCommand(args);
    }
    case 'status': {
      const { statusCommand } = await import('./status.ts');
      return statusCommand(args);
    }
    case 'canary': {
      const { canaryCommand } = await import('./canary.ts');
      return canaryCommand(args);
    }
    case 'get':
    case 'join-token':
    case 'config':
    case 'proxy-status':
    case 'config-dump': {
      const { adminCommand } = await import('./admin-client.ts');
      return adminCommand(command, args);
    }
    case 'inject':
    case 'injector': {
      const { injectCommand, injectorCommand } = await import('./inject.ts');
      return command === 'inject' ? injectCommand(args) : injectorCommand(args);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

function portOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--${name} must be a port number, got ${JSON.stringify(value)}`);
  return n;
}

async function controlPlane(args: string[]): Promise<number | undefined> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      'xds-port': { type: 'string' },
      'admin-port': { type: 'string' },
      address: { type: 'string' },
      store: { type: 'string' },
      'admin-token-file': { type: 'string' },
      'ca-dir': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      'ca-rotation-grace': { type: 'string' },
      'xds-tls': { type: 'boolean' },
      'xds-tls-names': { type: 'string' },
      'kube-api': { type: 'string' },
      'kube-token-file': { type: 'string' },
      'kube-ca-file': { type: 'string' },
      'kube-audience': { type: 'string' },
      'git-interval': { type: 'string' },
      'comparator-port': { type: 'string' },
      'comparator-address': { type: 'string' },
    },
  });
  if (values['comparator-address'] !== undefined && values['comparator-port'] === undefined) throw new UsageError('--comparator-address goes with --comparator-port');
  const git = values.config !== undefined && isGitSource(values.config) ? gitOption(values.config, values['git-interval']) : undefined;
  if (!git && values['git-interval'] !== undefined) throw new UsageError('--git-interval applies to --config git+URL#BRANCH:PATH only');
  const { startControlPlane } = await import('../main.ts');
  if ((values['ca-cert'] === undefined) !== (values['ca-key'] === undefined)) throw new UsageError('--ca-cert and --ca-key go together');
  if (values['xds-tls-names'] && !values['xds-tls']) throw new UsageError('--xds-tls-names goes with --xds-tls');
  if (values['kube-api'] && !values['kube-token-file']) throw new UsageError('--kube-api needs --kube-token-file (a token allowed to create tokenreviews)');
  let rotationGraceMs: number | undefined;
  if (values['ca-rotation-grace'] !== undefined) {
    rotationGraceMs = parseDuration(values['ca-rotation-grace']);
    if (rotationGraceMs < 1000) throw new UsageError('--ca-rotation-grace must be at least 1s: agents need time to fetch the new trust bundle');
  }
  const token = values['admin-token-file'] ? fs.readFileSync(values['admin-token-file'], 'utf8').trim() : undefined;
  if (values['admin-token-file'] && !token) throw new UsageError(`--admin-token-file ${values['admin-token-file']} is empty`);
  const cp = await startControlPlane({
    configDir: git ? undefined : values.config,
    git,
    xdsPort: portOption(values['xds-port'], 'xds-port', 18000),
    adminPort: portOption(values['admin-port'], 'admin-port', 18080),
    address: values.address ?? '0.0.0.0',
    adminToken: token,
    store: values.store ?? 'memory',
    ca: { dir: values['ca-dir'], certFile: values['ca-cert'], keyFile: values['ca-key'], rotationGraceMs },
    xdsTls: values['xds-tls'] ? { names: (values['xds-tls-names'] ?? `localhost,127.0.0.1,${os.hostname()}`).split(',').map((n) => n.trim()).filter(Boolean) } : undefined,
    kubernetes: values['kube-api']
      ? { url: values['kube-api'], tokenFile: values['kube-token-file']!, caFile: values['kube-ca-file'], audiences: values['kube-audience']?.split(',') }
      : undefined,
    comparator:
      values['comparator-port'] !== undefined
        ? { port: portOption(values['comparator-port'], 'comparator-port', 0), advertise: values['comparator-address'] }
        : undefined,
  });
  const stop = () => {
    cp.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return undefined;
}

function statsFlushInterval(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = isDuration(value) ? parseDuration(value) : NaN;
  if (!(ms >= 100 && ms <= 3_600_000)) throw new UsageError(`--stats-flush-interval must be a duration from 100ms to 1h, got ${JSON.stringify(value)}`);
  return ms;
}

function gitOption(config: string, interval: string | undefined): { source: GitSourceSpec; intervalMs: number } {
  let source: GitSourceSpec;
  try {
    source = parseGitSource(config);
  } catch (err) {
    throw new UsageError(`--config: ${(err as Error).message}`);
  }
  let intervalMs = DEFAULT_GIT_INTERVAL_MS;
  if (interval !== undefined) {
    try {
      intervalMs = parseDuration(interval);
    } catch (err) {
      throw new UsageError(`--git-interval: ${(err as Error).message}`);
    }
    if (intervalMs < MIN_GIT_INTERVAL_MS || intervalMs > MAX_GIT_INTERVAL_MS) throw new UsageError(`--git-interval must be from 1s to 24h, got ${interval}`);
  }
  return { source, intervalMs };
}

function bootstrap(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: {
      service: { type: 'string' },
      namespace: { type: 'string' },
      'node-id': { type: 'string' },
      xds: { type: 'string' },
      'xds-mode': { type: 'string' },
      'admin-port': { type: 'string' },
      'outbound-port': { type: 'string' },
      'outbound-address': { type: 'string' },
      'inbound-port': { type: 'string' },
      'inbound-address': { type: 'string' },
      'app-port': { type: 'string' },
      zone: { type: 'string' },
      'stats-flush-interval': { type: 'string' },
      'stats-port': { type: 'string' },
      output: { type: 'string', short: 'o' },
      grpc: { type: 'boolean' },
      'cert-dir': { type: 'string' },
    },
  });
  if (!values['node-id']) throw new UsageError('--node-id is required');
  const output = values.output ?? 'json';
  if (output !== 'json' && output !== 'yaml') throw new UsageError(`-o must be json or yaml, got ${output}`);
  const print = (config: unknown) => process.stdout.write(output === 'yaml' ? YAML.stringify(config) : JSON.stringify(config, null, 2) + '\n');
  if (values.grpc) {
    // For proxyless gRPC clients: GRPC_XDS_BOOTSTRAP points at this file.
    const envoyOnly = ['service', 'xds-mode', 'stats-port', 'admin-port', 'outbound-port', 'outbound-address', 'inbound-port', 'inbound-address', 'app-port'].filter((f) => (values as Record<string, unknown>)[f] !== undefined);
    if (envoyOnly.length) throw new UsageError(`${envoyOnly.map((f) => `--${f}`).join(', ')} describe an Envoy sidecar, not a --grpc client`);
    print(grpcBootstrap({ nodeId: values['node-id'], xds: parseXdsAddresses(values.xds ?? '127.0.0.1:18000'), zone: values.zone, certDir: values['cert-dir'] }));
    return 0;
  }
  if (values['cert-dir']) throw new UsageError('--cert-dir is for --grpc bootstraps; a sidecar gets its certificate from its agent over SDS');
  const mode = values['xds-mode'] ?? 'sotw';
  if (mode !== 'sotw' && mode !== 'delta') throw new UsageError(`--xds-mode must be sotw or delta, got ${mode}`);
  if ((values['inbound-port'] === undefined) !== (values['app-port'] === undefined)) {
    throw new UsageError('--inbound-port and --app-port go together');
  }
  const statsErrors: string[] = [];
  const statsPort = parseStatsPort(values['stats-port'] ?? process.env.TESSERA_STATS_PORT, '--stats-port (or TESSERA_STATS_PORT)', statsErrors);
  if (statsErrors.length) throw new UsageError(statsErrors.join('\n'));
  const config = envoyBootstrap({
    statsListener: statsPort === undefined ? false : { address: '0.0.0.0', port: statsPort },
    service: values.service,
    namespace: values.namespace,
    nodeId: values['node-id'],
    xds: parseXdsAddresses(values.xds ?? '127.0.0.1:18000'),
    mode,
    zone: values.zone,
    statsFlushIntervalMs: statsFlushInterval(values['stats-flush-interval']),
    adminPort: portOption(values['admin-port'], 'admin-port', 15000),
    outbound: { address: values['outbound-address'] ?? '127.0.0.1', port: portOption(values['outbound-port'], 'outbound-port', 15001) },
    inbound:
      values['inbound-port'] !== undefined
        ? {
            address: values['inbound-address'] ?? '0.0.0.0',
            port: portOption(values['inbound-port'], 'inbound-port', 0),
            appPort: portOption(values['app-port'], 'app-port', 0),
            appAddress: '127.0.0.1',
          }
        : undefined,
  });
  print(config);
  return 0;
}
