// A demo HTTP service that names itself in every answer (body and `x-backend`). With
// `calls`, it first calls other mesh services through its sidecar's outbound listener
// (Host: SERVICE), passing the trace headers of the request it serves on, so the
// sidecars' spans of every hop join one trace. For trying progressive delivery it can
// be made to fail or to be slow: `errorPercent` answers 503 on that share of requests
// (spread evenly, every 100/errorPercent-th request), `delayMs` waits before every answer.
import http from 'node:http';

/** What a mesh app copies from the request it serves to the requests it makes
 *  (W3C trace context, B3, Envoy's request id), as Istio asks of its apps. */
export const TRACE_HEADERS = [
  'traceparent',
  'tracestate',
  'x-request-id',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
] as const;

export function traceHeaders(incoming: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of TRACE_HEADERS) {
    const value = incoming[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

export interface HttpServiceOptions {
  /** Services to call for each request, via the sidecar's outbound listener. */
  calls?: { outbound: { address: string; port: number }; services: string[] };
  errorPercent?: number;
  delayMs?: number;
}

/** The failure and latency knobs alone (what the Canary tests turn). */
export type DemoBehaviour = Pick<HttpServiceOptions, 'errorPercent' | 'delayMs'>;

interface UpstreamAnswer {
  service: string;
  status: number;
  body?: unknown;
  error?: string;
}

function callUpstream(outbound: { address: string; port: number }, service: string, path: string, headers: Record<string, string>): Promise<UpstreamAnswer> {
  return new Promise((resolve) => {
    const req = http.get({ host: outbound.address, port: outbound.port, path, headers: { ...headers, host: service }, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: kept as text */
        }
        resolve({ service, status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ service, status: 0, error: err.message }));
  });
}

export async function startHttpService(name: string, port: number, host = '127.0.0.1', options: HttpServiceOptions = {}): Promise<http.Server> {
  let served = 0;
  const server = http.createServer(async (req, res) => {
    const n = ++served;
    const percent = options.errorPercent ?? 0;
    const injected = percent > 0 && Math.floor((n * percent) / 100) > Math.floor(((n - 1) * percent) / 100);
    const calls = options.calls;
    const upstream = calls ? await Promise.all(calls.services.map((s) => callUpstream(calls.outbound, s, req.url ?? '/', traceHeaders(req.headers)))) : undefined;
    // A failed dependency fails the request, as it would in a real app.
    const failed = upstream?.some((u) => u.status < 200 || u.status > 299);
    const answer = () => {
      res.writeHead(injected ? 503 : failed ? 502 : 200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(
        `${JSON.stringify({ service: name, path: req.url, at: new Date().toISOString(), ...(upstream ? { upstream } : {}), ...(injected ? { error: 'injected failure' } : {}) })}\n`,
      );
    };
    if (options.delayMs) setTimeout(answer, options.delayMs);
    else answer();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
