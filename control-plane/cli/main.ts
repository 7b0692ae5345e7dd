// The `tessera` command: dispatches to one module per command.
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import YAML from 'yaml';
import { envoyBootstrap, parseXdsAddresses } from '../../sidecar/bootstrap/bootstrap.ts';
import { parseDuration } from '../config/duration.ts';
import { DEFAULT_GIT_INTERVAL_MS, isGitSource, MAX_GIT_INTERVAL_MS, MIN_GIT_INTERVAL_MS, parseGitSource, type GitSourceSpec } from '../config/git-url.ts';

const USAGE = `usage: tessera <command> [options]

commands:
  control-plane --config DIR|git+URL[#BRANCH][:PATH] [--git-interval 30s] [--xds-port 18000] [--admin-port 18080]
                [--address 0.0.0.0] [--store memory|file:PATH|etcd://HOST:PORT,...] [--admin-token-file F]
  validate DIR
  analyze DIR [--strict] | analyze --admin URL
  bootstrap --service S --node-id ID [--xds HOST:PORT[,…]] [--xds-mode sotw|delta]
            [--admin-port 15000] [--outbound-port 15001] [--inbound-port P --app-port A] [--zone Z] [-o json|yaml]
  sidecar --service S --app-port A [--inbound-port P] [--control-plane URL] [--xds HOST:PORT,…] [--capture] …
          (tessera sidecar --help for every option)
  capture [--inbound-ports 9080,…|*] [--exclude-inbound-ports …] [--exclude-outbound-ports …]
          [--exclude-outbound-ip-ranges CIDR,…] [--proxy-uid 1337] [--outbound-port 15001]
          [--inbound-capture-port 15006] [--remove]
  get services|proxies|routes|config [--admin URL] [-o json]
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
    case 'analyze': {
      const { analyzeCommand } = await import('./analyze.ts');
      return analyzeCommand(args);
    }
    case 'status': {
      const { statusCommand } = await import('./status.ts');
      return statusCommand(args);
    }
    case 'get':
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
      'git-interval': { type: 'string' },
    },
  });
  const git = values.config !== undefined && isGitSource(values.config) ? gitOption(values.config, values['git-interval']) : undefined;
  if (!git && values['git-interval'] !== undefined) throw new UsageError('--git-interval applies to --config git+URL#BRANCH:PATH only');
  const { startControlPlane } = await import('../main.ts');
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
  });
  const stop = () => {
    cp.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return undefined;
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
      output: { type: 'string', short: 'o' },
    },
  });
  if (!values['node-id']) throw new UsageError('--node-id is required');
  const mode = values['xds-mode'] ?? 'sotw';
  if (mode !== 'sotw' && mode !== 'delta') throw new UsageError(`--xds-mode must be sotw or delta, got ${mode}`);
  if ((values['inbound-port'] === undefined) !== (values['app-port'] === undefined)) {
    throw new UsageError('--inbound-port and --app-port go together');
  }
  const output = values.output ?? 'json';
  if (output !== 'json' && output !== 'yaml') throw new UsageError(`-o must be json or yaml, got ${output}`);
  const config = envoyBootstrap({
    service: values.service,
    namespace: values.namespace,
    nodeId: values['node-id'],
    xds: parseXdsAddresses(values.xds ?? '127.0.0.1:18000'),
    mode,
    zone: values.zone,
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
  process.stdout.write(output === 'yaml' ? YAML.stringify(config) : JSON.stringify(config, null, 2) + '\n');
  return 0;
}
