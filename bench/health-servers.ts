// Local HTTP servers for the health-check benchmark; sends its ports to the parent.
import http from 'node:http';

const count = Number(process.argv[2] ?? 16);
const ports: number[] = [];
for (let i = 0; i < count; i++) {
  const server = http.createServer((_req, res) => res.writeHead(200).end('ok'));
  server.keepAliveTimeout = 5000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ports.push((server.address() as { port: number }).port);
}
process.send!(ports);
