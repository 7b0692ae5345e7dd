// Tessera's side of `npm run bench -- --peer`: the control plane as users run it,
// started through its public entry point (startControlPlane) on a config dir, in
// its own process so its CPU and RSS are read from /proc the same way as the Go
// peer's. Changes reach it only through public doors: the admin API (registry)
// and the config dir (EndpointSlice files). Nothing here touches reconciler
// internals, so the harness keeps working while those are rewritten.
//
//   node --import tsx bench/peer/tessera-server.ts CONFIG_DIR
// prints one JSON line to stdout: {"xdsPort":…,"adminPort":…}; logs go to stderr.
import { startControlPlane } from '../../control-plane/main.ts';

const configDir = process.argv[2];
if (!configDir) {
  process.stderr.write('usage: tessera-server.ts CONFIG_DIR\n');
  process.exit(2);
}
const cp = await startControlPlane({ configDir, xdsPort: 0, adminPort: 0, address: '127.0.0.1', store: 'memory' });
process.stdout.write(`${JSON.stringify({ xdsPort: cp.xdsPort, adminPort: cp.adminPort })}\n`);
const stop = () => void cp.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
