// A demo HTTP service that names itself in every answer (body and `x-backend`).
// For trying progressive delivery it can be made to fail or to be slow:
// `errorPercent` answers 503 on that share of requests (spread evenly, every
// 100/errorPercent-th request), `delayMs` waits before every answer.
import http from 'node:http';

export interface DemoBehaviour {
  errorPercent?: number;
  delayMs?: number;
}

export async function startHttpService(name: string, port: number, host = '127.0.0.1', behaviour: DemoBehaviour = {}): Promise<http.Server> {
  let served = 0;
  const server = http.createServer((req, res) => {
    const n = ++served;
    const percent = behaviour.errorPercent ?? 0;
    const fails = percent > 0 && Math.floor((n * percent) / 100) > Math.floor(((n - 1) * percent) / 100);
    const answer = () => {
      res.writeHead(fails ? 503 : 200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(JSON.stringify({ service: name, path: req.url, at: new Date().toISOString(), ...(fails ? { error: 'injected failure' } : {}) }) + '\n');
    };
    if (behaviour.delayMs) setTimeout(answer, behaviour.delayMs);
    else answer();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
