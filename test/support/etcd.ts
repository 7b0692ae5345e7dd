// A real etcd (Debian's etcd-server) on free loopback ports, killed by PID at teardown.
import { execFileSync } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { tempDir } from './mesh.ts';
import { freePort, requireTool, startProcess, waitFor, type Owner } from './processes.ts';

export function findEtcd(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function requireEtcd(t: ExecutionContext): boolean {
  return requireTool(t, findEtcd() !== undefined, 'etcd', 'apt-get install etcd-server');
}

export async function startEtcd(t: Owner): Promise<{ endpoint: string }> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dir = tempDir(t, 'tessera-etcd-');
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const proc = startProcess(t, findEtcd()!, [
    '--name', 'test', '--data-dir', dir,
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`, '--log-level', 'error',
  ]);
  await waitFor('etcd to be healthy', async () => {
    if (proc.child.exitCode !== null) throw new Error(`etcd exited: ${proc.output()}`);
    const res = await request(`${client}/health`);
    return (await res.body.text()).includes('"true"');
  }, 15_000);
  return { endpoint: `127.0.0.1:${clientPort}` };
}
