// One short-lived proxyless gRPC client process: reads its xDS bootstrap from
// GRPC_XDS_BOOTSTRAP_CONFIG, dials `xds:///TARGET`, makes COUNT Echo calls and prints
// {"counts": {backend: n}, "errors": [...]} as one JSON line. A process of its own,
// because grpc-js-xds keeps one xDS stream per process for as long as it lives.
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { EchoService } from '../../examples/demo/echo-grpc.ts';

// HOLD=1 keeps the channel (and so the xDS stream) open after the calls, until killed.
const [target, countArg, readyMsArg] = process.argv.slice(2);
xds.register();
const client = new EchoService(`xds:///${target}`, grpc.credentials.createInsecure());
const counts: Record<string, number> = {};
const errors: string[] = [];
const readyMs = Number(readyMsArg ?? 10_000);
client.waitForReady(Date.now() + readyMs, async (err) => {
  if (err) errors.push(`not ready within ${readyMs} ms: ${err.message}`);
  else {
    for (let i = 0; i < Number(countArg ?? 20); i++) {
      await new Promise<void>((resolve) =>
        (client as any).Echo({ message: 'hi' }, { deadline: Date.now() + 5000 }, (e: Error | null, reply: { backend: string }) => {
          if (e) errors.push(e.message);
          else counts[reply.backend] = (counts[reply.backend] ?? 0) + 1;
          resolve();
        }),
      );
    }
  }
  process.stdout.write(`${JSON.stringify({ counts, errors })}\n`);
  if (process.env.HOLD === '1') return;
  client.close();
  process.exit(0);
});
