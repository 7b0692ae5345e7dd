// Real git repositories for tests: a working repository the test commits to, pushed
// to a bare one that is served over HTTP, either as static files (git's "dumb"
// protocol, after `git update-server-info`) or through `git http-backend` as CGI
// (the "smart" protocol, which can fetch shallow).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Owner } from './processes.ts';
import { tempDir } from './mesh.ts';

export const gitIn = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=Tessera Test', '-c', 'user.email=test@tessera.invalid', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
  }).trim();

export interface TestRepo {
  /** The working repository. */
  work: string;
  /** The bare repository, `<root>/repo.git`. */
  bare: string;
  root: string;
  /** Writes (or deletes, with null) files, commits, pushes to the bare repository; returns the SHA. */
  commit(files: Record<string, string | null>, message: string): string;
}

export function testRepo(t: Owner): TestRepo {
  const base = tempDir(t, 'tessera-gitrepo-');
  const work = path.join(base, 'work');
  const root = path.join(base, 'served');
  const bare = path.join(root, 'repo.git');
  fs.mkdirSync(work);
  fs.mkdirSync(root);
  gitIn(work, 'init', '-q');
  gitIn(root, 'init', '-q', '--bare', bare);
  return {
    work,
    bare,
    root,
    commit(files, message) {
      for (const [name, text] of Object.entries(files)) {
        const file = path.join(work, name);
        if (text === null) fs.rmSync(file);
        else {
          fs.mkdirSync(path.dirname(file), { recursive: true });
          fs.writeFileSync(file, text);
        }
      }
      gitIn(work, 'add', '-A');
      gitIn(work, 'commit', '-q', '--allow-empty', '-m', message);
      gitIn(work, 'push', '-q', bare, 'HEAD:refs/heads/main');
      // What the dumb protocol reads (info/refs, objects/info/packs).
      gitIn(bare, 'update-server-info');
      return gitIn(work, 'rev-parse', 'HEAD');
    },
  };
}

export interface GitHttpServer {
  port: number;
  /** Bodies of the smart protocol's POSTs (upload-pack requests), as text. */
  uploadPackBodies: string[];
  requests: number;
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

/** Serves `root` over HTTP on 127.0.0.1: `dumb` as static files, `smart` through git http-backend. */
export async function serveGit(t: Owner, root: string, mode: 'dumb' | 'smart', port = 0): Promise<GitHttpServer> {
  const served: GitHttpServer = { port, uploadPackBodies: [], requests: 0, stop: async () => {}, start: async () => {} };
  const server = http.createServer((req, res) => {
    served.requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    if (mode === 'dumb') {
      const file = path.join(root, path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, ''));
      if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      fs.createReadStream(file).pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST') served.uploadPackBodies.push(body.toString('latin1'));
      const cgi = spawn('git', ['http-backend'], {
        env: {
          ...process.env,
          GIT_PROJECT_ROOT: root,
          GIT_HTTP_EXPORT_ALL: '1',
          PATH_INFO: url.pathname,
          QUERY_STRING: url.search.slice(1),
          REQUEST_METHOD: req.method ?? 'GET',
          CONTENT_TYPE: req.headers['content-type'] ?? '',
          CONTENT_LENGTH: String(body.length),
          GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
          REMOTE_ADDR: '127.0.0.1',
        },
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      const out: Buffer[] = [];
      cgi.stdout.on('data', (c: Buffer) => out.push(c));
      cgi.on('close', () => {
        // CGI output: headers, a blank line, the body.
        const all = Buffer.concat(out);
        const split = all.indexOf('\r\n\r\n');
        const head = all.subarray(0, split).toString().split('\r\n');
        const headers: Record<string, string> = {};
        let status = 200;
        for (const line of head) {
          const [k, ...v] = line.split(':');
          if (k.toLowerCase() === 'status') status = Number(v.join(':').trim().split(' ')[0]);
          else headers[k] = v.join(':').trim();
        }
        res.writeHead(status, headers).end(all.subarray(split + 4));
      });
      // http-backend reads no body for a GET and may be gone before it is written.
      cgi.stdin.on('error', () => {});
      cgi.stdin.end(body);
    });
  });
  served.start = () =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(served.port, '127.0.0.1', () => {
        served.port = (server.address() as { port: number }).port;
        resolve();
      });
    });
  served.stop = () =>
    new Promise((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  await served.start();
  t.teardown(() => served.stop());
  return served;
}
