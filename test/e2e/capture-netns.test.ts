// Transparent capture for real: two "hosts" (network namespaces on a bridge we
// create), each with an app, `tessera sidecar --capture` (iptables inside the
// namespace) and Envoy; the control plane on the host side of the bridge. App A
// calls http://b.mesh/ with no proxy settings and no Host trick.
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { requireEnvoy, startControlPlaneProcess, tempDir, tesseraBin } from '../support/mesh.ts';
import { canUseNetns, envoyStat, inNs, makeHosts, noProxyEnv } from '../support/netns.ts';
import { requireTool, startProcess, testNeeding, waitFor } from '../support/processes.ts';
import { findEnvoy } from '../../sidecar/agent/envoy.ts';

const APP = `const [name, port] = process.argv.slice(1);
require('node:http').createServer((req, res) => {
  res.writeHead(200, {'x-backend': name, 'content-type': 'application/json'});
  res.end(JSON.stringify({backend: name, host: req.headers.host, remote: req.socket.remoteAddress}));
}).listen(Number(port), '0.0.0.0');`;

/** What app A does: plain fetches, no proxy settings. Prints one JSON line. */
const CLIENT = `const [url, count] = process.argv.slice(1);
(async () => {
  const out = [];
  for (let i = 0; i < Number(count); i++) {
    try { const r = await fetch(url); out.push(r.headers.get('x-backend') ?? 'status ' + r.status); await r.text(); }
    catch (e) { out.push('error ' + (e.cause?.code ?? e.message)); }
  }
  console.log(JSON.stringify(out));
})();`;

const netnsTest = testNeeding({ envoy: findEnvoy() !== undefined, netns: canUseNetns() });

netnsTest.serial('with --capture, app A calls http://b.mesh/ unaware: both Envoys carry it, the route split holds, non-mesh hosts pass through, and Envoy does not loop', async (t) => {
  if (!requireEnvoy(t)) return;
  if (!requireTool(t, canUseNetns(), 'ip netns + iptables (as root)', 'run as root with iproute2 and iptables (apt-get install iptables)')) return;
  const hosts = makeHosts(t);

  const dir = tempDir(t);
  // Namespace `mesh`, so `b.mesh` is one of b's names (as `b.NAMESPACE` is in Kubernetes).
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), `apiVersion: v1
kind: Service
metadata: {name: b, namespace: mesh}
spec: {ports: [{name: http, port: 80, appProtocol: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: b-v1, namespace: mesh}
spec: {ports: [{name: http, port: 80, targetPort: 8081, appProtocol: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: b-v2, namespace: mesh}
spec: {ports: [{name: http, port: 80, targetPort: 8082, appProtocol: http}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: b-v1, namespace: mesh, labels: {kubernetes.io/service-name: b-v1}}
addressType: IPv4
ports: [{name: http, port: 8081}]
endpoints: [{addresses: ["${hosts.ip.b}"]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: b-v2, namespace: mesh, labels: {kubernetes.io/service-name: b-v2}}
addressType: IPv4
ports: [{name: http, port: 8082}]
endpoints: [{addresses: ["${hosts.ip.b}"]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: mesh}
spec:
  parentRefs: [{kind: Service, name: b}]
  rules:
  - backendRefs: [{name: b-v1, port: 80, weight: 50}, {name: b-v2, port: 80, weight: 50}]
`);
  // On the host side of the bridge, the only address both namespaces reach.
  const cp = await startControlPlaneProcess(t, { configDir: dir, address: hosts.hostIp, readyTimeoutMs: 60_000 });
  const cpAdmin = cp.adminUrl;

  const inNsProcess = (ns: string, args: string[]) => startProcess(t, 'ip', ['netns', 'exec', ns, ...args], { env: noProxyEnv() });
  inNsProcess(hosts.ns.b, [process.execPath, '-e', APP, 'b-v1', '8081']);
  inNsProcess(hosts.ns.b, [process.execPath, '-e', APP, 'b-v2', '8082']);
  inNsProcess(hosts.ns.b, [process.execPath, '-e', APP, 'outside-mesh', '8083']);
  inNsProcess(hosts.ns.a, [process.execPath, '-e', APP, 'a', '8080']);
  const agent = (key: 'a' | 'b', service: string, appPort: number) => {
    const proc = inNsProcess(hosts.ns[key], [
      process.execPath, tesseraBin, 'sidecar', '--capture',
      '--service', service, '--namespace', 'mesh', '--app-port', String(appPort),
      '--address', hosts.ip[key], '--control-plane', cpAdmin, '--xds', `${hosts.hostIp}:${cp.xdsPort}`,
      // The instances are the EndpointSlices above (the registry has no namespaces yet).
      '--no-register',
    ]);
    t.teardown(() => {
      if (!t.passed) t.log(`agent ${key}:\n${proc.output().slice(-5000)}`);
    });
    return proc;
  };
  const agents = { a: agent('a', 'a', 8080), b: agent('b', 'b-v1', 8081) };
  for (const key of ['a', 'b'] as const) {
    await waitFor(`agent ${key} to be ready`, async () => {
      if (agents[key].child.exitCode !== null) throw new Error(`agent ${key} exited: ${agents[key].output()}`);
      // From the host side: port 15021 is excluded from inbound capture.
      const res = await request(`http://${hosts.ip[key]}:15021/ready`);
      await res.body.dump();
      return res.statusCode === 200;
    }, 60_000, 200);
  }
  const rules = inNs(hosts.ns.a, 'iptables', ['-t', 'nat', '-S']);
  t.regex(rules, /-A OUTPUT -p tcp -j TESSERA_OUTPUT/);
  t.regex(rules, /-A TESSERA_OUTPUT -m owner --gid-owner 1337 -j RETURN/);

  const calls = 40;
  const answers: string[] = JSON.parse(inNs(hosts.ns.a, process.execPath, ['-e', CLIENT, 'http://b.mesh/', String(calls)]));
  const counts: Record<string, number> = {};
  for (const a of answers) counts[a] = (counts[a] ?? 0) + 1;
  t.log(`app A -> http://b.mesh/ x${calls}: ${JSON.stringify(counts)}`);
  t.is((counts['b-v1'] ?? 0) + (counts['b-v2'] ?? 0), calls, 'every call answered by b-v1 or b-v2');
  t.true(counts['b-v1'] >= 5 && counts['b-v2'] >= 5, 'the 50/50 split is followed');

  // Through A's outbound capture listener exactly once per call (a loop would
  // count Envoy's own upstream requests too), and through B's inbound capture.
  t.is(await envoyStat(hosts.ns.a, 'http.outbound_capture.downstream_rq_total'), calls);
  t.is(
    (await envoyStat(hosts.ns.a, 'cluster.outbound|80||b-v1.mesh.upstream_rq_total')) + (await envoyStat(hosts.ns.a, 'cluster.outbound|80||b-v2.mesh.upstream_rq_total')),
    calls,
  );
  t.is(await envoyStat(hosts.ns.b, 'http.inbound_capture.downstream_rq_total'), calls);
  t.is(await envoyStat(hosts.ns.b, 'cluster.passthrough.upstream_rq_total'), calls, 'B forwarded each to the app on its original port');
  t.is(await envoyStat(hosts.ns.a, 'cluster.passthrough.upstream_rq_total'), 0, 'nothing went through A as passthrough');

  // A host outside the mesh: passes through A's Envoy to where it was going.
  const outside: string[] = JSON.parse(inNs(hosts.ns.a, process.execPath, ['-e', CLIENT, `http://${hosts.ip.b}:8083/`, '3']));
  t.deepEqual(outside, ['outside-mesh', 'outside-mesh', 'outside-mesh']);
  t.is(await envoyStat(hosts.ns.a, 'cluster.passthrough.upstream_rq_total'), 3);
  t.is(await envoyStat(hosts.ns.a, 'http.outbound_capture.downstream_rq_total'), calls + 3);

  // SIGTERM: the agent drains, exits 0 and takes its rules with it.
  const exited = new Promise<number | null>((resolve) => agents.a.child.once('exit', (code) => resolve(code)));
  agents.a.child.kill('SIGTERM');
  t.is(await exited, 0);
  t.notRegex(inNs(hosts.ns.a, 'iptables', ['-t', 'nat', '-S']), /TESSERA/);
});
