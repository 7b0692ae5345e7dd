// Watching a config dir: a change (write, create, delete, rename-over) is reloaded
// after a short debounce; a reload whose files are byte-identical is not reported.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { listConfigFiles, loadConfigDir, type LoadResult } from './load.ts';

export function watchConfigDir(
  dir: string,
  onChange: (result: LoadResult) => void,
  opts: { debounceMs?: number; pollMs?: number } = {},
): { close(): void } {
  const debounceMs = opts.debounceMs ?? 100;
  let lastDigest = digest(dir);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = () => {
    timer = undefined;
    if (closed) return;
    const now = digest(dir);
    if (now === lastDigest) return;
    lastDigest = now;
    onChange(loadConfigDir(dir));
  };
  const schedule = () => {
    if (!closed && !timer) timer = setTimeout(check, debounceMs);
  };

  // Recursive fs.watch works on Linux from Node 20; editors that replace a file by
  // rename are seen as events on the directory, so no per-file watcher is re-armed.
  const watcher = fs.watch(dir, { recursive: true }, schedule);
  watcher.on('error', schedule);
  // A slow safety net for filesystems where inotify misses events (network mounts).
  const poll = setInterval(schedule, opts.pollMs ?? 2000);
  poll.unref();

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher.close();
    },
  };
}

function digest(dir: string): string {
  const hash = createHash('sha256');
  try {
    for (const file of listConfigFiles(dir)) {
      hash.update(path.relative(dir, file)).update('\0');
      try {
        hash.update(fs.readFileSync(file)).update('\0');
      } catch {
        hash.update('(unreadable)\0');
      }
    }
  } catch {
    hash.update('(dir unreadable)');
  }
  return hash.digest('hex');
}
