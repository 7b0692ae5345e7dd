// NACKs come from an unauthenticated port with error text of the client's choosing:
// the log stays small, the metrics count every one.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { NackLog } from '../../control-plane/admin/nack-log.ts';
import { startControlPlane } from '../../control-plane/main.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';
import { connect } from '../support/ads-client.ts';

test('NACK lines are cut to a bounded length and limited per node and type, counting what was left out', (t) => {
  let now = 0;
  const lines: string[] = [];
  const log = new NackLog((l) => lines.push(l), { windowMs: 10_000, maxErrorChars: 100, now: () => now });
  for (let i = 0; i < 50; i++) log.nack('a', 'CDS', 'v1', 'x'.repeat(10_000));
  log.nack('a', 'LDS', 'v1', 'listener broken');
  log.nack('b', 'CDS', 'v1', 'other node');
  t.is(lines.length, 3);
  t.true(lines[0].length < 300, lines[0]);
  t.regex(lines[0], /^NACK from a for CDS version v1: x{100}… \(9900 more characters\)$/);
  t.regex(lines[1], /NACK from a for LDS version v1: listener broken/);
  now += 10_001;
  log.nack('a', 'CDS', 'v2', 'again');
  t.regex(lines[3], /NACK from a for CDS version v2: again \(and 49 more NACKs from this node for CDS since the last line\)/);
});

test('many nodes cannot flood the log either: past the window\'s line budget, NACK lines are only counted', (t) => {
  let now = 0;
  const lines: string[] = [];
  const log = new NackLog((l) => lines.push(l), { windowMs: 1000, maxLinesPerWindow: 5, now: () => now });
  for (let i = 0; i < 1000; i++) log.nack(`node-${i}`, 'CDS', 'v1', 'bad');
  t.is(lines.length, 5);
  now += 1000;
  log.nack('late', 'CDS', 'v1', 'bad');
  t.regex(lines[5], /995 more NACK lines left out in the last 1 s \(see tessera_xds_nacks_total\)/);
});

test('a client flooding the xDS port with huge NACKs leaves a small log, full counts in /metrics, and a live control plane', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-nack-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'api.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  ports: [{name: http, port: 80, appProtocol: http}]\n');
  let logBytes = 0;
  const cp = await startControlPlane({ configDir: dir, xdsPort: 0, adminPort: 0, address: '127.0.0.1', log: (l) => (logBytes += l.length + 1) });
  t.teardown(() => cp.close());
  const client = connect(cp.xdsPort);
  t.teardown(() => client.close());
  const s = client.sotw();
  s.send({ node: { id: 'flooder', cluster: 'api' }, type_url: TypeUrl.Cluster });
  const first = await s.nth(1);
  const before = logBytes;
  const error = 'E'.repeat(256 * 1024);
  const count = 200; // 50 MiB of error text
  for (let i = 0; i < count; i++) {
    s.send({ type_url: TypeUrl.Cluster, version_info: '', response_nonce: first.nonce, error_detail: { code: 3, message: error } });
  }
  const nacks = async () => Number(/tessera_xds_nacks_total\{type="CDS"\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text())?.[1] ?? 0);
  let seen = 0;
  for (let i = 0; i < 200 && seen < count; i++) {
    await new Promise((r) => setTimeout(r, 100));
    seen = await nacks();
  }
  t.is(seen, count, 'every NACK is counted');
  const logged = logBytes - before;
  t.log(`${count} NACKs of ${error.length} bytes each: ${logged} bytes of log`);
  t.true(logged < 4096, `${logged} bytes logged`);
  t.is((await fetch(`http://127.0.0.1:${cp.adminPort}/healthz`)).status, 200);
});
