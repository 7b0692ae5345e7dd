// The dashboard (/ui/) and its live feed (/api/v1/events), both read-only. The page is
// built by Vite from ui/ into ui/dist at `npm install` (package.json `prepare`); the
// admin server serves those files itself, so nothing is fetched from elsewhere at run
// time. Files are read per request, so `npm run build:ui` takes effect without a restart.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LiveEvents } from './live-events.ts';
import { HttpError, type AdminResponse, type AdminRoute } from './router.ts';

export const DEFAULT_UI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../ui/dist');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

const CSP = "default-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tessera dashboard not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>The dashboard is not built</h1>
<p>This control plane has no built dashboard to serve (looked in <code>DIR</code>).</p>
<p>In the Tessera checkout, run <code>npm run build:ui</code> (<code>npm install</code> does it too), then reload this page.</p>
<p>The JSON API works without it: <a href="/api/v1/services">/api/v1/services</a>, <a href="/api/v1/proxies">/api/v1/proxies</a>,
<a href="/api/v1/changes">/api/v1/changes</a>, <a href="/api/v1/config">/api/v1/config</a>.</p>
</body></html>
`;

export function uiRoutes(events: LiveEvents, opts: { dir?: string } = {}): AdminRoute[] {
  const dir = path.resolve(opts.dir ?? DEFAULT_UI_DIR);
  const redirect = (): AdminResponse => ({ status: 302, headers: { location: '/ui/' }, text: 'the dashboard is at /ui/\n' });
  return [
    { method: 'GET', pattern: '/', handler: redirect },
    { method: 'GET', pattern: '/ui', handler: redirect },
    { method: 'GET', pattern: '/ui/{path*}', handler: ({ params }) => serveFile(dir, params.path) },
    {
      method: 'GET',
      pattern: '/api/v1/events',
      handler: () => ({
        status: 200,
        stream: (req, res) => {
          if (req.method === 'HEAD') {
            res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
            res.end();
          } else events.attach(req, res);
        },
      }),
    },
  ];
}

function serveFile(dir: string, requested: string): AdminResponse {
  const index = path.join(dir, 'index.html');
  if (!fs.existsSync(index)) {
    return { status: 503, text: NOT_BUILT.replace('DIR', escapeHtml(dir)), contentType: 'text/html; charset=utf-8', headers: { 'cache-control': 'no-store' } };
  }
  let relative: string;
  try {
    relative = decodeURIComponent(requested);
  } catch {
    throw new HttpError(400, 'the path is not valid percent-encoding');
  }
  const file = path.resolve(dir, relative === '' ? 'index.html' : relative);
  // Only files inside the build dir: `..` and absolute paths end up outside it.
  if (file !== dir && !file.startsWith(dir + path.sep)) throw new HttpError(404, `no such file: /ui/${requested}`, 'TESSERA_ERR_NOT_FOUND');
  let body: Buffer;
  try {
    body = fs.readFileSync(file);
  } catch {
    throw new HttpError(404, `no such file: /ui/${requested}`, 'TESSERA_ERR_NOT_FOUND');
  }
  const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
  // Vite names assets by content hash: they can be cached for good; the page cannot.
  const immutable = relative.startsWith('assets/');
  return {
    status: 200,
    body,
    contentType: type,
    headers: {
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
      // The page loads nothing but its own files and the admin API it came from.
      'content-security-policy': CSP,
    },
  };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
