// `tessera injector`: the mutating admission webhook over HTTPS. POST /inject answers
// AdmissionReviews (admission.ts); GET /healthz says it is up. Bad bodies get 400 with the
// reason; nothing a client sends can crash it.
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { review } from './admission.ts';
import { AdmissionReviewError } from './errors.ts';
import type { InjectOptions } from './mutate.ts';

const MAX_BODY_BYTES = 8 * 1024 * 1024; // the API server's own limit for an object is 3 MiB

export interface InjectorOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  inject: InjectOptions;
  log?: (line: string) => void;
}

export interface Injector {
  port: number;
  close: () => Promise<void>;
}

export async function startInjector(options: InjectorOptions): Promise<Injector> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const tls = () => ({ cert: fs.readFileSync(options.certFile), key: fs.readFileSync(options.keyFile) });
  const server = https.createServer({ ...tls(), minVersion: 'TLSv1.2' }, (req, res) => {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'https://injector');
    if (url.pathname === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: `${req.method} is not allowed on /healthz`, code: 'TESSERA_ERR_METHOD' });
      return send(200, { status: 'ok' });
    }
    if (url.pathname !== '/inject') return send(404, { error: `no such endpoint: ${url.pathname}`, code: 'TESSERA_ERR_NOT_FOUND' });
    if (req.method !== 'POST') return send(405, { error: `${req.method} is not allowed on /inject (POST an AdmissionReview)`, code: 'TESSERA_ERR_METHOD' });

    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (tooLarge) return send(413, { error: `request body is larger than ${MAX_BODY_BYTES} bytes`, code: 'TESSERA_ERR_BODY_TOO_LARGE' });
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        return send(400, { error: `the body is not JSON: ${(err as Error).message}`, code: 'TESSERA_ERR_BAD_JSON' });
      }
      try {
        const { answer, summary } = review(body, options.inject);
        log(`injector: ${summary}`);
        send(200, answer);
      } catch (err) {
        if (err instanceof AdmissionReviewError) {
          log(`injector: bad AdmissionReview: ${err.message}`);
          return send(400, { error: err.message, code: err.code });
        }
        // A bug of ours: answer 500, so the API server applies the webhook's failurePolicy.
        log(`injector: internal error: ${(err as Error).stack}`);
        send(500, { error: 'internal error', code: 'TESSERA_ERR_INTERNAL' });
      }
    });
  });
  server.on('tlsClientError', () => {}); // a client that cannot speak TLS is its own problem

  // Certificates are rotated in place (cert-manager, a Secret update): reload on change.
  let reloadTimer: NodeJS.Timeout | undefined;
  const watcher = fs.watch(options.certFile, () => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      try {
        server.setSecureContext(tls());
        log('injector: reloaded the TLS certificate');
      } catch (err) {
        log(`injector: keeping the current TLS certificate, the new one does not load: ${(err as Error).message}`);
      }
    }, 200);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log(`injector: listening on https://${options.host}:${port} (POST /inject, GET /healthz)`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        watcher.close();
        clearTimeout(reloadTimer);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
