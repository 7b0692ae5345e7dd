// Transparent capture with iptables, as istio-iptables does it: the app's outbound
// TCP goes to Envoy's outbound capture listener, inbound TCP to the inbound capture
// listener. Envoy's own traffic (its uid/gid) and the proxy's ports are left alone,
// or every upstream connection Envoy makes would come straight back to it.
import { execFileSync } from 'node:child_process';
import net from 'node:net';

export class CaptureError extends Error {
  readonly code = 'TESSERA_ERR_CAPTURE';
}

export interface CaptureOptions {
  /** Ports whose inbound connections go to Envoy; '*' = every port not excluded. */
  inboundPorts: number[] | '*';
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  excludeOutboundCidrs: string[];
  proxyUid: number;
  proxyGid: number;
  outboundPort: number;
  inboundCapturePort: number;
}

/** Envoy admin, agent probes, agent status, the Prometheus stats listener: never redirected. */
export const ALWAYS_EXCLUDED_PORTS = [15000, 15020, 15021, 15090];

export const CHAIN = {
  inbound: 'TESSERA_INBOUND',
  inboundRedirect: 'TESSERA_IN_REDIRECT',
  output: 'TESSERA_OUTPUT',
  redirect: 'TESSERA_REDIRECT',
} as const;

export const DEFAULT_CAPTURE: CaptureOptions = {
  inboundPorts: '*',
  excludeInboundPorts: [],
  excludeOutboundPorts: [],
  excludeOutboundCidrs: [],
  proxyUid: 1337,
  proxyGid: 1337,
  outboundPort: 15001,
  inboundCapturePort: 15006,
};

/** The nat table rules, each as iptables arguments (after `-t nat`). Pure. */
export function captureRules(o: CaptureOptions): string[][] {
  const rules: string[][] = [];
  const add = (...args: string[]) => rules.push(args);
  for (const chain of Object.values(CHAIN)) add('-N', chain);
  add('-A', CHAIN.redirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(o.outboundPort));
  add('-A', CHAIN.inboundRedirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(o.inboundCapturePort));

  // Inbound: connections arriving from outside the host.
  const inboundExcluded = unique([...ALWAYS_EXCLUDED_PORTS, o.outboundPort, o.inboundCapturePort, ...o.excludeInboundPorts]);
  if (o.inboundPorts === '*' || o.inboundPorts.length > 0) {
    add('-A', 'PREROUTING', '-p', 'tcp', '-j', CHAIN.inbound);
    if (o.inboundPorts === '*') {
      for (const port of inboundExcluded) add('-A', CHAIN.inbound, '-p', 'tcp', '--dport', String(port), '-j', 'RETURN');
      add('-A', CHAIN.inbound, '-p', 'tcp', '-j', CHAIN.inboundRedirect);
    } else {
      for (const port of o.inboundPorts.filter((p) => !inboundExcluded.includes(p))) {
        add('-A', CHAIN.inbound, '-p', 'tcp', '--dport', String(port), '-j', CHAIN.inboundRedirect);
      }
    }
  }

  // Outbound: connections this host's processes open.
  add('-A', 'OUTPUT', '-p', 'tcp', '-j', CHAIN.output);
  add('-A', CHAIN.output, '-m', 'owner', '--uid-owner', String(o.proxyUid), '-j', 'RETURN');
  add('-A', CHAIN.output, '-m', 'owner', '--gid-owner', String(o.proxyGid), '-j', 'RETURN');
  // Loopback stays local: the app talking to itself, the agent to Envoy's admin.
  add('-A', CHAIN.output, '-d', '127.0.0.0/8', '-j', 'RETURN');
  for (const port of unique([...ALWAYS_EXCLUDED_PORTS, ...o.excludeOutboundPorts])) {
    add('-A', CHAIN.output, '-p', 'tcp', '--dport', String(port), '-j', 'RETURN');
  }
  for (const cidr of unique(o.excludeOutboundCidrs)) add('-A', CHAIN.output, '-d', cidr, '-j', 'RETURN');
  add('-A', CHAIN.output, '-j', CHAIN.redirect);
  return rules;
}

/** What undoes captureRules (idempotent: missing rules and chains are fine). */
export function removalRules(): string[][] {
  return [
    ['-D', 'PREROUTING', '-p', 'tcp', '-j', CHAIN.inbound],
    ['-D', 'OUTPUT', '-p', 'tcp', '-j', CHAIN.output],
    ...Object.values(CHAIN).flatMap((chain) => [
      ['-F', chain],
      ['-X', chain],
    ]),
  ];
}

export function parsePortList(value: string | undefined, what: string): number[] {
  if (value === undefined || value.trim() === '') return [];
  return value.split(',').map((part) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new CaptureError(`${what}: ${JSON.stringify(part)} is not a port number`);
    return n;
  });
}

export function parseCidrList(value: string | undefined, what: string): string[] {
  if (value === undefined || value.trim() === '') return [];
  return value.split(',').map((raw) => {
    const part = raw.trim();
    const [ip, bits, extra] = part.split('/');
    const family = net.isIP(ip);
    const max = family === 4 ? 32 : 128;
    const len = bits === undefined ? max : Number(bits);
    if (family !== 4 || extra !== undefined || !Number.isInteger(len) || len < 0 || len > max) {
      throw new CaptureError(`${what}: ${JSON.stringify(part)} is not an IPv4 CIDR (like 10.0.0.0/8); IPv6 capture is not supported yet`);
    }
    return `${ip}/${len}`;
  });
}

function iptables(args: string[]): void {
  try {
    execFileSync('iptables', ['-w', '-t', 'nat', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new CaptureError('iptables is not installed (Debian: apt-get install iptables)');
    throw new CaptureError(`iptables -t nat ${args.join(' ')} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

/** Replaces any earlier Tessera rules with these. Needs NET_ADMIN (root). */
export function installCapture(o: CaptureOptions): void {
  removeCapture();
  for (const rule of captureRules(o)) iptables(rule);
}

export function removeCapture(): void {
  for (const rule of removalRules()) {
    try {
      iptables(rule);
    } catch (err) {
      if ((err as Error).message.includes('not installed')) throw err;
      /* not there: nothing to undo */
    }
  }
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}
