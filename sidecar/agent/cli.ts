// `tessera sidecar` and `tessera capture`: flag parsing and exit codes; the work
// is in agent.ts and capture.ts.
import { parseArgs } from 'node:util';
import { EXIT, log, runAgent } from './agent.ts';
import { installCapture, removeCapture } from './capture.ts';
import { AgentConfigError, type AgentOptions, CAPTURE_FLAGS, captureOptions, parseSidecarArgs, SIDECAR_USAGE } from './options.ts';

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
