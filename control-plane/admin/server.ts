// The admin HTTP server: JSON API, metrics, health. Mutations need the bearer
// token when one is configured; bodies are size-limited.
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { HttpError, matchRoute, type AdminResponse, type AdminRoute } from './router.ts';

export const MAX_BODY_BYTES = 64 * 1024;

export interface AdminServerOptions {
  routes: AdminRoute[];
  token?: string;
  /** Without a token, mutations are only accepted when the API listens on loopback. */
  openMutations?: boolean;
  log?: (line: string) => void;
}

export class AdminServer {
  readonly http: http.Server;

  constructor(private readonly options: AdminServerOptions) {
    this.http = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        options.log?.(`admin: ${req.method} ${req.url} failed: ${(err as Error).stack}`);
        if (!res.headersSent) write(res, { status: 500, json: { error: 'internal error', code: 'TESSERA_ERR_INTERNAL' } });
      });
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => resolve((this.http.address() as { port: number }).port));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    try {
      // HEAD is GET without the body (RFC 9110 9.3.2), so monitors that probe with it work.
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      const match = matchRoute(this.options.routes, method, url.pathname);
      if (!match) throw new HttpError(404, `no such endpoint: ${url.pathname}`, 'TESSERA_ERR_NOT_FOUND');
      if ('allowed' in match) {
        res.setHeader('Allow', [...match.allowed, ...(match.allowed.includes('GET') ? ['HEAD'] : [])].join(', '));
        throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`, 'TESSERA_ERR_METHOD');
      }
      if (match.route.mutates) this.authorize(req);
      const response = await match.route.handler({ req, params: match.params, url, body: () => readBody(req) });
      if (response.stream) response.stream(req, res);
      else write(res, response);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      write(res, { status: err.status, json: { error: err.message, code: err.code } });
    }
  }

  private authorize(req: http.IncomingMessage): void {
    const expected = this.options.token;
    if (!expected) {
      if (this.options.openMutations) return;
      throw new HttpError(
        403,
        'this admin API listens beyond loopback without a token: start the control plane with --admin-token-file to allow changes',
        'TESSERA_ERR_NO_TOKEN_CONFIGURED',
      );
    }
    // The auth scheme is case-insensitive (RFC 9110 11.1): `bearer` and `BEARER` too.
    const given = /^Bearer +(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim() ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(expected);
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      throw new HttpError(401, 'a valid bearer token is required for this endpoint', 'TESSERA_ERR_UNAUTHORIZED');
    }
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const tooLarge = () => new HttpError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`, 'TESSERA_ERR_BODY_TOO_LARGE');

function write(res: http.ServerResponse, r: AdminResponse): void {
  const body = r.body ?? (r.text !== undefined ? r.text : JSON.stringify(r.json ?? {}, null, 2) + '\n');
  const type = r.body || r.text !== undefined ? (r.contentType ?? 'text/plain; charset=utf-8') : 'application/json';
  res.writeHead(r.status, { ...r.headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  // For HEAD, node:http sends the headers and drops the body.
  res.end(body);
}
