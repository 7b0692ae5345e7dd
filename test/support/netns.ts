// Two "hosts" for capture tests: network namespaces on a bridge of our own, each
// torn down at the end whatever happens (needs root, iproute2 and iptables).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { ExecutionContext } from 'ava';

export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = `tessera-probe-${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', probe]).status === 0;
  if (added) spawnSync('ip', ['netns', 'del', probe]);
  return added && spawnSync('iptables', ['--version']).status === 0;
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

export interface Hosts {
  subnet: string;
  hostIp: string;
  ns: { a: string; b: string };
  ip: { a: string; b: string };
}

/** A bridge with two namespaces on it; torn down at the end whatever happens. */
export function makeHosts(t: ExecutionContext): Hosts {
  const n = process.pid % 10_000;
  const subnet = `10.${200 + (process.pid % 50)}.${Math.floor(Math.random() * 250)}`;
  const bridge = `tsbr${n}`;
  const hosts: Hosts = { subnet, hostIp: `${subnet}.1`, ns: { a: `tessera-a-${n}`, b: `tessera-b-${n}` }, ip: { a: `${subnet}.2`, b: `${subnet}.3` } };
  t.teardown(() => {
    for (const ns of Object.values(hosts.ns)) {
      spawnSync('ip', ['netns', 'del', ns]);
      fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    spawnSync('ip', ['link', 'del', bridge]);
  });
  sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
  sh('ip', ['addr', 'add', `${hosts.hostIp}/24`, 'dev', bridge]);
  sh('ip', ['link', 'set', bridge, 'up']);
  for (const [key, ns] of Object.entries(hosts.ns) as ['a' | 'b', string][]) {
    const outside = `tsv${key}${n}`;
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['link', 'set', outside, 'master', bridge, 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${hosts.ip[key]}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // `ip netns exec` bind-mounts this over /etc/hosts inside the namespace.
    fs.mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    fs.writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n${hosts.ip.b} b.mesh\n${hosts.ip.a} a.mesh\n`);
  }
  return hosts;
}

export const noProxyEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k)));

export function inNs(ns: string, cmd: string, args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', env: noProxyEnv(), timeout: 60_000 });
}

export async function envoyStat(ns: string, name: string): Promise<number> {
  const text = inNs(ns, 'curl', ['-s', `http://127.0.0.1:15000/stats?filter=^${name.replace(/[.|]/g, '\\$&')}$`]);
  const m = /: (\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

