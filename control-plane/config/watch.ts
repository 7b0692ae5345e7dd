// Watching a config dir: a change (write, create, delete, rename-over) is reloaded
// once the files have settled, and a reload whose files are byte-identical is not
// reported.
//
// Settling: a file being written slowly (or truncated, then filled) can parse as a
// smaller valid config, so a reload reads only files whose size and mtime have not
// moved over `settleMs`, and throws its result away if they moved while it read.
// The dir itself may vanish, be renamed or become unreadable: that is reported as
// an error (never as "no config"), and the dir is picked up again when it returns.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigLoader } from './load-async.ts';
import { DEFAULT_LIMITS, listConfigFiles, type LoadLimits, type LoadResult } from './load.ts';

export interface WatchOptions {
  debounceMs?: number;
  /** How long files must stay unchanged before they are read. */
  settleMs?: number;
  pollMs?: number;
  limits?: LoadLimits;
  /** Loads a dir; by default in a worker thread (load-async.ts). */
  load?: (dir: string, limits: LoadLimits) => Promise<LoadResult>;
  /** Trouble of the watcher itself (the loader reports config errors in its result). */
  onError?: (message: string) => void;
}

export const DEFAULT_SETTLE_MS = Number(process.env.TESSERA_CONFIG_SETTLE_MS ?? 200);

export function watchConfigDir(
  dir: string,
  onChange: (result: LoadResult) => void,
  /** `initial`: the digest of a load the caller did itself, and the fingerprint
   *  taken just before it, so an edit made in between is not missed. */
  opts: WatchOptions & { initial?: { digest?: string; fingerprint: string } } = {},
): { close(): void } {
  const debounceMs = opts.debounceMs ?? 50;
  const settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const loader = opts.load ? undefined : new ConfigLoader();
  const load = opts.load ?? ((d: string, l: LoadLimits) => loader!.load(d, l));
  let lastStat = opts.initial ? opts.initial.fingerprint : fingerprint(dir);
  let lastDigest = opts.initial?.digest;
  let lastErrors = '';
  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  let again = false;
  let closed = false;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const check = async () => {
    timer = undefined;
    if (closed) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      // Wait until nothing has moved for a whole settle period, counted from the
      // first look (when the change was noticed), so the debounce counts toward it.
      let before = seen?.fingerprint ?? fingerprint(dir);
      let since = seen?.at ?? Date.now();
      seen = undefined;
      for (;;) {
        const now = fingerprint(dir);
        if (now !== before) {
          before = now;
          since = Date.now();
        }
        if (before === lastStat) return;
        const waited = Date.now() - since;
        if (waited >= settleMs) break;
        await sleep(settleMs - waited);
        if (closed) return;
      }
      const result = await load(dir, limits);
      if (closed) return;
      if (fingerprint(dir) !== before) {
        again = true; // written to while being read: read it again once it settles
        return;
      }
      lastStat = before;
      rearm();
      if (result.errors.length === 0) {
        // Back to the content last reported good, with no error in between: no change.
        if (result.digest !== undefined && result.digest === lastDigest && lastErrors === '') return;
        lastDigest = result.digest;
        lastErrors = '';
      } else {
        const errors = JSON.stringify(result.errors);
        if (errors === lastErrors) return; // the same trouble, already reported
        lastErrors = errors;
      }
      onChange(result);
    } catch (err) {
      opts.onError?.(`config watcher: ${(err as Error).message}`);
    } finally {
      busy = false;
      if (again && !closed) {
        again = false;
        schedule();
      }
    }
  };
  let seen: { fingerprint: string; at: number } | undefined;
  const schedule = () => {
    if (closed || timer) return;
    if (!busy && !seen) seen = { fingerprint: fingerprint(dir), at: Date.now() };
    timer = setTimeout(() => void check(), debounceMs);
  };

  // Recursive fs.watch works on Linux from Node 20; editors that replace a file by
  // rename are seen as events on the directory, so no per-file watcher is re-armed.
  // The watch follows the dir's inode: when the dir is removed or replaced it is
  // watched again (the poll below notices).
  let watcher: fs.FSWatcher | undefined;
  let watchedIno: number | undefined;
  const rearm = () => {
    let ino: number | undefined;
    try {
      ino = fs.statSync(dir).ino;
    } catch {
      ino = undefined;
    }
    if (watcher && ino === watchedIno) return;
    watcher?.close();
    watcher = undefined;
    watchedIno = ino;
    if (ino === undefined) return;
    try {
      watcher = fs.watch(dir, { recursive: true }, schedule);
      watcher.on('error', () => {
        watcher?.close();
        watcher = undefined;
        schedule();
      });
    } catch {
      watcher = undefined; // unreadable: the poll keeps looking
    }
  };
  rearm();
  if (opts.initial) schedule();
  else {
    // What is there now is the baseline: learn its digest before reporting changes.
    // If the files moved while it was read, it is no baseline: the next look reports.
    busy = true;
    load(dir, limits)
      .then((r) => {
        if (fingerprint(dir) !== lastStat) return;
        lastDigest = r.digest;
        lastErrors = r.errors.length > 0 ? JSON.stringify(r.errors) : '';
      })
      .catch(() => {})
      .finally(() => {
        busy = false;
        if (again && !closed) {
          again = false;
          schedule();
        }
      });
  }
  // A slow safety net for filesystems where inotify misses events (network mounts),
  // and the way a dir that went away is noticed coming back.
  const poll = setInterval(() => {
    rearm();
    schedule();
  }, opts.pollMs ?? 2000);
  poll.unref();

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
      loader?.close();
    },
  };
}

/** Names, sizes and mtimes of the config files (cheap: no contents read), or why
 *  the dir cannot be listed. */
export function fingerprint(dir: string): string {
  try {
    return listConfigFiles(dir)
      .map((file) => {
        try {
          const s = fs.statSync(file);
          return `${path.relative(dir, file)}\0${s.size}\0${s.mtimeMs}\0${s.ino}`;
        } catch (err) {
          return `${path.relative(dir, file)}\0${(err as NodeJS.ErrnoException).code}`;
        }
      })
      .join('\n');
  } catch (err) {
    return `(dir: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}
