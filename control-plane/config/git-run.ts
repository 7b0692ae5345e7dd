// Running the `git` CLI for the git config source: no shell, a deadline per command,
// nothing from the fetched repository ever executed, and no prompt ever waited on.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

export interface GitRunOptions {
  gitDir: string;
  workTree?: string;
  /** The remote's URL, given through the environment so it never shows in the process list. */
  remoteUrl?: string;
  timeoutMs: number;
  /** Called with the child's pid while it runs, so close() can end it. */
  onSpawn?: (pid: number | undefined) => void;
}

export interface GitResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const MAX_OUTPUT = 64 * 1024;

/** Settings that keep a fetched repository from running anything here. Hooks live in
 *  our own git dir (created empty, without templates), but core.hooksPath makes sure;
 *  symlinks are checked out as plain files holding the link text, so a link in the
 *  repository cannot make the loader read a file outside it. */
const SAFE_CONFIG = ['-c', 'core.hooksPath=/dev/null', '-c', 'core.symlinks=false', '-c', 'core.fsmonitor=false'];

export function runGit(args: string[], opts: GitRunOptions): Promise<GitResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // An environment that points git elsewhere (the control plane started from a hook) is ignored.
  for (const key of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_CONFIG_PARAMETERS']) delete env[key];
  Object.assign(env, {
    GIT_TERMINAL_PROMPT: '0', // an auth failure is an error, never a prompt nobody answers
    // Only these transports, also after a redirect and in anything git spawns (no ext::, no ssh).
    GIT_ALLOW_PROTOCOL: 'https:http:file',
    LC_ALL: 'C', // git's messages in English, as they are shown to users and matched below
  });
  if (opts.remoteUrl !== undefined) {
    Object.assign(env, { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'remote.origin.url', GIT_CONFIG_VALUE_0: opts.remoteUrl });
  } else delete env.GIT_CONFIG_COUNT;
  const prefix = ['--git-dir', opts.gitDir, ...(opts.workTree ? ['--work-tree', opts.workTree] : []), ...SAFE_CONFIG];
  return new Promise((resolve) => {
    // Its own process group, so a deadline ends git and the helpers it started (git-remote-https).
    const cwd = opts.workTree ?? opts.gitDir;
    const child = spawn('git', [...prefix, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd });
    opts.onSpawn?.(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < MAX_OUTPUT) stderr += c.toString();
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, opts.timeoutMs);
    const done = (code: number | null) => {
      clearTimeout(timer);
      opts.onSpawn?.(undefined);
      resolve({ code, stdout, stderr, timedOut });
    };
    child.once('error', (err) => {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      if (missing && !fs.existsSync(cwd)) stderr += `the git cache dir ${cwd} is gone`;
      else stderr += missing ? 'the git CLI is not on PATH (the git config source runs it; install git)' : `cannot run git: ${err.message}`;
      done(null);
    });
    child.once('close', (code) => done(code));
  });
}

/** Ends a git command and its helpers, by the process group we gave it. */
export function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
