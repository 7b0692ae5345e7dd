// A NACK provoked on purpose: a sidecar told to take an inbound port that another
// process already holds. Envoy rejects the listener; the control plane records
// Envoy's error and does not push the rejected version again.
import fs from 'node:fs';
import path from 'node:path';
import { envoyTest, requireEnvoy, startBackend, startControlPlaneProcess, startEnvoy, tempDir } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

interface TypeStatus {
  sentVersion?: string;
  sentNonce?: string;
  lastNack?: { version: string; error: string };
}

for (const mode of ['sotw', 'delta'] as const) {
  envoyTest.serial(`[${mode}] a NACK shows in /api/v1/proxies with Envoy's error, and the rejected version is not resent`, async (t) => {
    if (!requireEnvoy(t)) return;
    const occupant = await startBackend(t, 'occupant');
    const dir = tempDir(t);
    fs.writeFileSync(path.join(dir, 'empty.yaml'), '');
    const cp = await startControlPlaneProcess(t, { configDir: dir });
    const envoy = await startEnvoy(t, {
      xdsPorts: [cp.xdsPort],
      mode,
      service: 'clash',
      inbound: { port: occupant.port, appPort: 1 },
    });
    const lds = await waitFor('the LDS NACK to be recorded', async () => {
      const { proxies } = await cp.api<{ proxies: { nodeId: string; types: Record<string, TypeStatus> }[] }>('/api/v1/proxies');
      const status = proxies.find((p) => p.nodeId === envoy.nodeId)?.types.LDS;
      return status?.lastNack && status;
    });
    t.regex(lds.lastNack!.error, new RegExp(`${occupant.port}|address already in use`, 'i'));
    t.is(lds.lastNack!.version, lds.sentVersion ?? '', 'the NACK names the version that was pushed');

    const pushes = async () => {
      const text = await (await fetch(`${cp.adminUrl}/metrics`)).text();
      return Number(/tessera_xds_pushes_total\{type="LDS"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await pushes();
    await new Promise((r) => setTimeout(r, 2000));
    t.is(await pushes(), before, 'no LDS push in a loop after the NACK');
    t.true((await envoy.stat('listener_manager.lds.update_rejected')) >= 1);
  });
}
