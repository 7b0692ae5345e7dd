// A demo HTTP service that names itself in every answer (body and `x-backend`).
import http from 'node:http';

export async function startHttpService(name: string, port: number, host = '127.0.0.1'): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name });
    res.end(JSON.stringify({ service: name, path: req.url, at: new Date().toISOString() }) + '\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
