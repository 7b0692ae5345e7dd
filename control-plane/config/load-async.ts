// Loading a config dir off the main thread. Parsing YAML and checking schemas is
// synchronous and, for a big or hostile file, slow and memory-hungry; on the main
// thread it would freeze xDS, the admin API and health checks. A worker thread
// does it with its own heap cap and a deadline; if it dies or runs over, the load
// is rejected with a reason and a new worker serves the next one.
import { Worker } from 'node:worker_threads';
import { DEFAULT_LIMITS, emptyResult, type LoadLimits, type LoadResult } from './load.ts';

export interface ConfigLoaderOptions {
  /** A load that takes longer is abandoned (the worker is ended). */
  timeoutMs?: number;
  /** Heap cap of the worker, in MiB. */
  maxHeapMb?: number;
}

export class ConfigLoader {
  private worker?: Worker;
  private ready?: Promise<void>;
  private nextId = 0;
  private readonly waiting = new Map<number, (r: LoadResult) => void>();

  constructor(private readonly options: ConfigLoaderOptions = {}) {}

  async load(dir: string, limits: LoadLimits = DEFAULT_LIMITS): Promise<LoadResult> {
    const worker = this.start();
    worker.ref(); // held while a load is under way, released when none is
    try {
      await this.ready;
    } catch (err) {
      return emptyResult(dir, `the config loader could not start: ${(err as Error).message}`);
    }
    const id = ++this.nextId;
    const timeoutMs = this.options.timeoutMs ?? 60_000;
    return new Promise<LoadResult>((resolve) => {
      const timer = setTimeout(() => {
        this.stop(`loading took over ${timeoutMs / 1000} s; the files are too big or too complex`);
      }, timeoutMs);
      this.waiting.set(id, (result) => {
        clearTimeout(timer);
        if (this.waiting.size === 0) this.worker?.unref();
        resolve(result);
      });
      worker.postMessage({ id, dir, limits });
    }).then((r) => ({ ...r, errors: r.errors.map((e) => (e.file === '' ? { ...e, file: dir } : e)) }));
  }

  /** Starts the worker ahead of the first load, without holding the process open. */
  warm(): void {
    this.start();
  }

  close(): void {
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./load-thread.js', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.options.maxHeapMb ?? 1024 },
      stdout: false,
    });
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`exited with code ${code}`)));
      worker.on('message', (m: { ready?: true; id?: number; result?: LoadResult }) => {
        if (m.ready) return resolve();
        const done = this.waiting.get(m.id!);
        this.waiting.delete(m.id!);
        done?.(m.result!);
      });
    });
    this.ready.catch(() => {});
    worker.on('error', (err) => this.stop(`the config loader failed: ${err.message}`, worker));
    worker.on('exit', () => this.stop('the config loader stopped (out of memory?)', worker));
    worker.unref();
    return worker;
  }

  /** Ends the worker and rejects what it was doing; the next load starts a new one. */
  private stop(reason: string, which = this.worker): void {
    if (which !== this.worker) return;
    this.worker = undefined;
    void which?.terminate();
    for (const [id, done] of this.waiting) {
      this.waiting.delete(id);
      done(emptyResult('', reason));
    }
  }
}
