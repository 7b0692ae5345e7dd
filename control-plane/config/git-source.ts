// Desired state from git, polled and reconciled like Flux's GitRepository: every
// interval the branch is fetched (shallow when the server allows it) into a private
// git dir; a revision not seen before has its PATH checked out and loaded by the same
// loader as a config dir, and handed over all-or-nothing, exactly as the directory
// watcher does (watch.ts). A broken revision is reported with file:line and its SHA
// and the last good one keeps serving; a failed fetch is reported and retried at the
// interval. Suspend stops polling; sync fetches now.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_LIMITS, type ConfigError, type LoadLimits, type LoadResult } from './load.ts';
import { killGroup, runGit } from './git-run.ts';
import { describeGitSource, redactText, type GitSourceSpec } from './git-url.ts';

export interface GitLoadResult extends LoadResult {
  /** The commit the files come from. */
  revision: string;
  errors: (ConfigError & { revision?: string })[];
}

export interface GitSourceOptions {
  intervalMs: number;
  /** Deadline of each git command. */
  timeoutMs?: number;
  /** Loads a dir (a worker thread in the control plane: load-async.ts). */
  load: (dir: string, limits: LoadLimits) => Promise<LoadResult>;
  limits?: LoadLimits;
  /** Where the private git dir and checkout live; a temp dir (removed on close) by default. */
  cacheDir?: string;
  log?: (line: string) => void;
  /** After every fetch attempt (ok or not), and on suspend and resume (undefined), for metrics. */
  onFetch?: (ok: boolean | undefined, status: GitSourceStatus) => void;
  /** How often a fetch error that does not change is logged again. */
  repeatLogMs?: number;
}

export interface GitSourceStatus {
  kind: 'git';
  url: string;
  branch: string;
  path: string;
  intervalSeconds: number;
  suspended: boolean;
  /** Newest commit fetched from the branch. */
  fetchedRevision?: string;
  /** Last successful fetch. */
  fetchedAt?: string;
  /** Commit whose files are being served. */
  appliedRevision?: string;
  appliedAt?: string;
  lastAttemptAt?: string;
  /** Why the newest fetch failed, or why the newest fetched revision was not applied. */
  lastError?: { kind: 'fetch' | 'config'; message: string; at: string; revision?: string };
  consecutiveFailures: number;
}

/** Everything main.ts and the admin API need of a config source that can be steered. */
export interface SteerableConfigSource {
  status(): GitSourceStatus;
  suspend(): GitSourceStatus;
  resume(): GitSourceStatus;
  /** Fetches now (after any fetch under way) and resolves with the state after it. */
  sync(): Promise<GitSourceStatus>;
  close(): void;
}

export const DEFAULT_GIT_TIMEOUT_MS = Number(process.env.TESSERA_GIT_TIMEOUT_MS ?? 60_000);

export class GitSuspendedError extends Error {
  readonly code = 'TESSERA_ERR_GIT_SUSPENDED';
}

const FETCHED_REF = 'refs/tessera/fetched';

/** Polls `spec` and hands every new revision's load result to `onChange`, which
 *  says whether it was applied. The first fetch starts at once. */
export function watchGitSource(spec: GitSourceSpec, onChange: (result: GitLoadResult) => boolean, opts: GitSourceOptions): SteerableConfigSource {
  return new GitSource(spec, onChange, opts);
}

class GitSource implements SteerableConfigSource {
  private readonly cacheDir: string;
  private readonly ownsCacheDir: boolean;
  private readonly gitDir: string;
  private readonly treeDir: string;
  private readonly timeoutMs: number;
  private readonly log: (line: string) => void;
  private readonly name: string;
  private shallow = true;
  private suspended = false;
  private closed = false;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private queued?: Promise<void>;
  private gitPid?: number;
  /** The newest revision handed to onChange (applied or not): not loaded again. */
  private processed?: string;
  private state: Omit<GitSourceStatus, 'kind' | 'url' | 'branch' | 'path' | 'intervalSeconds' | 'suspended'> = { consecutiveFailures: 0 };
  private logged?: { message: string; at: number };
  /** Why the newest fetched revision was not applied; outlives a fetch error meanwhile. */
  private configError?: GitSourceStatus['lastError'];

  constructor(
    private readonly spec: GitSourceSpec,
    private readonly onChange: (result: GitLoadResult) => boolean,
    private readonly opts: GitSourceOptions,
  ) {
    this.ownsCacheDir = opts.cacheDir === undefined;
    this.cacheDir = opts.cacheDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-git-'));
    this.gitDir = path.join(this.cacheDir, 'repo.git');
    this.treeDir = path.join(this.cacheDir, 'tree');
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_GIT_TIMEOUT_MS;
    this.log = opts.log ?? (() => {});
    this.name = describeGitSource(spec);
    void this.trigger();
  }

  status(): GitSourceStatus {
    return {
      kind: 'git',
      url: this.spec.display,
      branch: this.spec.branch,
      path: this.spec.path,
      intervalSeconds: this.opts.intervalMs / 1000,
      suspended: this.suspended,
      ...this.state,
    };
  }

  suspend(): GitSourceStatus {
    if (!this.suspended) {
      this.suspended = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      this.log(`git: ${this.name} suspended: no fetch and no new revision applied until resumed; ${this.state.appliedRevision ? `revision ${this.state.appliedRevision} keeps serving` : 'nothing applied yet'}`);
      this.opts.onFetch?.(undefined, this.status());
    }
    return this.status();
  }

  resume(): GitSourceStatus {
    if (this.suspended) {
      this.suspended = false;
      this.log(`git: ${this.name} resumed`);
      this.opts.onFetch?.(undefined, this.status());
      void this.trigger();
    }
    return this.status();
  }

  async sync(): Promise<GitSourceStatus> {
    if (this.suspended) throw new GitSuspendedError(`${this.name} is suspended: resume it first (POST /api/v1/config/resume)`);
    await this.trigger();
    return this.status();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    killGroup(this.gitPid);
    if (!this.ownsCacheDir) return;
    const remove = () => fs.rmSync(this.cacheDir, { recursive: true, force: true });
    remove();
    // A git command being killed may still write a file or two: removed again once it is gone.
    void this.running?.finally(remove);
  }

  /** One attempt at a time; callers during one get the next (shared by all of them). */
  private trigger(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) {
      this.running = this.attempt().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.queued = this.running.then(() => {
      this.queued = undefined;
      return this.trigger();
    });
    return this.queued;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || this.suspended) return;
    this.timer = setTimeout(() => void this.trigger(), this.opts.intervalMs);
    this.timer.unref();
  }

  private async attempt(): Promise<void> {
    if (this.closed || this.suspended) return;
    this.state.lastAttemptAt = new Date().toISOString();
    let revision: string;
    try {
      revision = await this.fetch();
    } catch (err) {
      this.fetchFailed((err as Error).message);
      this.schedule();
      return;
    }
    let readable = true;
    try {
      if (this.state.consecutiveFailures > 0) this.log(`git: fetching ${this.name} works again after ${this.state.consecutiveFailures} failed attempt${this.state.consecutiveFailures === 1 ? '' : 's'}`);
      this.logged = undefined;
      this.state.consecutiveFailures = 0;
      this.state.fetchedRevision = revision;
      this.state.fetchedAt = new Date().toISOString();
      if (this.state.lastError?.kind === 'fetch') this.state.lastError = this.configError;
      if (revision === this.processed) return;
      const result = await this.loadRevision(revision);
      // Suspended (or closed) while this revision was being read: it is not applied.
      if (this.closed || this.suspended) return;
      // onChange reports a broken revision itself (log, /api/v1/config, metrics), as for a dir.
      const applied = this.onChange(result) && result.errors.length === 0;
      if (!applied && result.errors.length === 0) {
        // A valid load that could not be served; onChange logged why.
        this.configError = { kind: 'config', message: `revision ${revision} was not applied (see the log)`, at: new Date().toISOString(), revision };
      } else if (!applied) {
        const first = result.errors[0];
        this.configError = {
          kind: 'config',
          message: `revision ${revision} has ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}, first ${first.file}:${first.line}: ${first.message}`,
          at: new Date().toISOString(),
          revision,
        };
      } else {
        this.state.appliedRevision = revision;
        this.state.appliedAt = new Date().toISOString();
        this.configError = undefined;
      }
      this.state.lastError = this.configError;
      this.processed = revision;
    } catch (err) {
      // A revision just fetched that cannot be checked out: the cache is damaged (or the
      // disk full); it is started afresh and tried again next time.
      readable = false;
      this.fetchFailed(`revision ${revision} could not be read: ${(err as Error).message}`);
      this.resetCache();
    } finally {
      if (readable) this.opts.onFetch?.(true, this.status());
      this.schedule();
    }
  }

  private fetchFailed(raw: string): void {
    if (this.closed) return; // the git command was ended by close()
    const message = redactText(raw, this.spec.secrets);
    this.state.consecutiveFailures++;
    this.state.lastError = { kind: 'fetch', message, at: new Date().toISOString() };
    // A cache damaged on disk would fail for ever: every third failure in a row starts it
    // afresh (a config repository is small; a network outage only costs one whole fetch).
    if (this.state.consecutiveFailures % 3 === 0) this.resetCache();
    this.opts.onFetch?.(false, this.status());
    // One line when the trouble starts or changes, then one every repeatLogMs while it lasts.
    const now = Date.now();
    const repeatMs = this.opts.repeatLogMs ?? 300_000;
    if (this.logged?.message === message && now - this.logged.at < repeatMs) return;
    const serving = this.state.appliedRevision ? `revision ${this.state.appliedRevision} keeps serving` : 'nothing applied yet';
    const again = this.logged?.message === message ? `still failing (${this.state.consecutiveFailures} attempts): ` : '';
    this.log(`git: ${again}${message}; ${serving}; retrying every ${this.opts.intervalMs / 1000} s`);
    this.logged = { message, at: now };
  }

  private resetCache(): void {
    fs.rmSync(this.gitDir, { recursive: true, force: true });
    fs.rmSync(this.treeDir, { recursive: true, force: true });
  }

  private async git(args: string[], what: string, withRemote = false): Promise<string> {
    if (this.closed) throw new Error('the git config source is closed');
    const r = await runGit(args, {
      gitDir: this.gitDir,
      workTree: args[0] === 'read-tree' ? this.treeDir : undefined,
      remoteUrl: withRemote ? this.spec.url : undefined,
      timeoutMs: this.timeoutMs,
      onSpawn: (pid) => (this.gitPid = pid),
    });
    if (r.timedOut) throw new Error(`${what} took over ${this.timeoutMs / 1000} s and was stopped (TESSERA_GIT_TIMEOUT_MS)`);
    if (r.code !== 0) throw new GitCommandError(`${what} failed: ${gitMessage(r.stderr) || `git exited with code ${r.code}`}`, r.stderr);
    return r.stdout.trim();
  }

  private async fetch(): Promise<string> {
    // Made again whenever it is missing: a temp-dir cleaner may remove it from under a
    // long-running control plane, or a reset (fetchFailed) did.
    fs.mkdirSync(this.treeDir, { recursive: true });
    if (!fs.existsSync(path.join(this.gitDir, 'HEAD'))) {
      fs.mkdirSync(this.gitDir, { recursive: true });
      // No templates: the git dir starts without sample hooks or anything else.
      await this.git(['init', '--bare', '--quiet', '--template='], 'creating the git cache');
    }
    const refspec = `+refs/heads/${this.spec.branch}:${FETCHED_REF}`;
    const fetch = (shallow: boolean) =>
      this.git(
        ['-c', 'gc.autoDetach=false', '-c', 'maintenance.autoDetach=false', 'fetch', '--quiet', '--no-tags', '--no-recurse-submodules', '--no-write-fetch-head',
          ...(shallow ? ['--depth', '1'] : []), 'origin', refspec],
        `fetch of branch ${this.spec.branch} from ${this.spec.display}`,
        true,
      );
    try {
      await fetch(this.shallow);
    } catch (err) {
      const stderr = (err as GitCommandError).stderr ?? '';
      if (/couldn't find remote ref/i.test(stderr)) throw new Error(`branch ${this.spec.branch} does not exist in ${this.spec.display}`);
      // The "dumb" HTTP protocol (static files) cannot fetch shallow: fetch it whole from now on.
      if (!this.shallow || !/does not support shallow/i.test(stderr)) throw err;
      this.shallow = false;
      await fetch(false);
    }
    return this.git(['rev-parse', '--verify', '--quiet', `${FETCHED_REF}^{commit}`], 'reading the fetched revision');
  }

  /** Checks out PATH of a revision and loads it; errors name files by their path in the
   *  repository and carry the revision. */
  private async loadRevision(revision: string): Promise<GitLoadResult> {
    const treeish = this.spec.path ? `${revision}:${this.spec.path}` : `${revision}^{tree}`;
    const shown = this.spec.path || '.';
    const type = await this.git(['cat-file', '-t', treeish], `looking up ${shown}`).catch(() => undefined);
    if (type !== 'tree') {
      const message = type === undefined ? `${shown} does not exist in revision ${revision} of branch ${this.spec.branch}` : `${shown} is a file in revision ${revision}, not a directory`;
      return { model: { services: [], routes: [], policies: [], endpoints: [] }, files: [], errors: [{ file: shown, line: 0, message, revision }], revision };
    }
    await this.git(['read-tree', '--reset', '-u', treeish], `checking out ${shown} of revision ${revision}`);
    const result = await this.opts.load(this.treeDir, this.opts.limits ?? DEFAULT_LIMITS);
    const inRepo = (file: string) => (file === this.treeDir || file === '' ? shown : this.spec.path ? `${this.spec.path}/${file}` : file);
    return {
      ...result,
      files: result.files.map(inRepo),
      errors: result.errors.map((e) => ({ ...e, file: inRepo(e.file), message: e.message.split(this.treeDir).join(shown), revision })),
      revision,
    };
  }
}

class GitCommandError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** git's own reason, without its hints, on one bounded line. */
function gitMessage(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('hint:'));
  const reasons = lines.filter((l) => /^(fatal|error):/.test(l));
  const text = (reasons.length > 0 ? reasons : lines).map((l) => l.replace(/^(fatal|error): /, '')).join('; ');
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
