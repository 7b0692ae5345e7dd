// Starting real processes (control plane, Envoy, etcd) for tests: free ports,
// readiness waits, and a kill by PID at teardown even when the test failed.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import test, { type ExecutionContext, type TestFn } from 'ava';

/** A port for a process to listen on. Picked below the kernel's ephemeral range
 *  (ip_local_port_range, 32768+ by default), so the outgoing connections of other
 *  processes cannot take it between this check and the listener's bind. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (claimed.has(port)) continue;
    if (await canBind(port)) {
      claimed.add(port);
      return port;
    }
  }
  throw new Error('no free port found in 20000-31999');
}

const claimed = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Anything that can run cleanups at the end: a test's `t`, or a scope shared by a file's tests. */
export type Owner = Pick<ExecutionContext, 'teardown'>;

export interface Started {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

const everyChild = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of everyChild) if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
});

/** Spawns `cmd args`, keeps its output for failure messages, and registers a
 *  teardown that kills it by PID. */
export function startProcess(t: Owner, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Started {
  const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  everyChild.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => child.pid && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    everyChild.delete(child);
  };
  t.teardown(stop);
  return { child, output: () => output, stop };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

/** Inside a test that needs a real part: with CI=true a missing part fails the
 *  test. Outside CI such a test is declared with `testNeeding`, which makes it a
 *  skipped test (reported as skipped, never as passed) when the part is missing. */
export function requireTool(t: ExecutionContext, found: boolean, name: string, install: string): boolean {
  if (found) return true;
  t.fail(`${name} is required${process.env.CI === 'true' ? ' under CI=true' : ''} but was not found (${install})`);
  return false;
}

/** ava's `test` for tests that need real parts: when one is missing outside CI, every
 *  test declared with it is skipped, and ava reports it so; under CI=true the tests
 *  run, and requireTool fails them. */
export function testNeeding(parts: Record<string, boolean>): TestFn {
  const missing = Object.entries(parts).filter(([, found]) => !found);
  if (missing.length === 0 || process.env.CI === 'true') return test;
  const skipping = ((...args: Parameters<TestFn['skip']>) => test.skip(...args)) as unknown as Record<string, unknown>;
  skipping.serial = Object.assign((...args: Parameters<TestFn['serial']['skip']>) => test.serial.skip(...args), { skip: test.serial.skip });
  skipping.skip = test.skip;
  skipping.before = test.before;
  skipping.after = test.after;
  return skipping as unknown as TestFn;
}

/** Debian's Chromium, which Playwright drives (playwright-core never downloads a browser here). */
export const CHROMIUM_PATH = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';

/** Declares tests that need a real Chromium (skipped when it is missing outside CI). */
export const chromiumTest = testNeeding({ chromium: fs.existsSync(CHROMIUM_PATH) });

export function requireChromium(t: ExecutionContext): boolean {
  return requireTool(t, fs.existsSync(CHROMIUM_PATH), 'chromium', 'apt-get install chromium');
}
