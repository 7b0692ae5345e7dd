// A real etcd (Debian's etcd-server) on free loopback ports, killed by PID at teardown.
import { execFileSync } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { findEnvoy } from '../../sidecar/agent/envoy.ts';
import { tempDir } from './mesh.ts';
import { freePort, requireTool, startProcess, testNeeding, waitFor, type Owner } from './processes.ts';

export function findEtcd(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Declares tests that need a real etcd (skipped when it is missing outside CI). */
export const etcdTest = testNeeding({ etcd: findEtcd() !== undefined });

/** Declares tests that need a real etcd and a real Envoy. */
export const etcdEnvoyTest = testNeeding({ etcd: findEtcd() !== undefined, envoy: findEnvoy() !== undefined });

export function requireEtcd(t: ExecutionContext): boolean {
  return requireTool(t, findEtcd() !== undefined, 'etcd', 'apt-get install etcd-server');
}

export interface EtcdProcess {
  endpoint: string;
  /** SIGKILLs etcd (an outage, as a crash or a partition looks to its clients). */
  kill: () => Promise<void>;
  /** Starts it again on the same ports and data dir. */
  restart: () => Promise<void>;
}

export async function startEtcd(t: Owner): Promise<EtcdProcess> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dir = tempDir(t, 'tessera-etcd-');
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'test', '--data-dir', dir,
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`, '--log-level', 'error',
  ];
  const up = async () => {
    const proc = startProcess(t, findEtcd()!, args);
    await waitFor('etcd to be healthy', async () => {
      if (proc.child.exitCode !== null) throw new Error(`etcd exited: ${proc.output()}`);
      const res = await request(`${client}/health`);
      return (await res.body.text()).includes('"true"');
    }, 15_000);
    return proc;
  };
  let proc = await up();
  return {
    endpoint: `127.0.0.1:${clientPort}`,
    kill: async () => {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
      const exited = new Promise((r) => proc.child.once('exit', r));
      process.kill(proc.child.pid!, 'SIGKILL');
      await exited;
    },
    restart: async () => {
      proc = await up();
    },
  };
}
