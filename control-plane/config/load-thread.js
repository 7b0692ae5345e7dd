// The config loader's worker thread (see load-async.ts). Plain JavaScript because a
// worker does not inherit the tsx hooks of the thread that starts it: this file
// registers them, then loads the TypeScript loader.
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { loadConfigDir } = await import('./load.ts');
parentPort.on('message', ({ id, dir, limits }) => {
  parentPort.postMessage({ id, result: loadConfigDir(dir, limits) });
});
parentPort.postMessage({ ready: true });
