// `tessera get services`: service, instance, address, zone, health, last check.
import { adminGet, table, type AdminTarget } from './admin-client.ts';

interface ServiceView {
  name: string;
  instances: { id: string; address: string; port: number; zone?: string; health: string; source: string; lastCheck?: string | null }[];
}

export async function getServicesCommand(args: string[], target: AdminTarget, out: NodeJS.WritableStream): Promise<number> {
  const json = args.includes('-o') ? args[args.indexOf('-o') + 1] === 'json' : args.includes('--output=json');
  const { services } = await adminGet<{ services: ServiceView[] }>(target, '/api/v1/services');
  if (json) {
    out.write(JSON.stringify(services, null, 2) + '\n');
    return 0;
  }
  const rows = services.flatMap((s) =>
    s.instances.length === 0
      ? [[s.name, '-', '-', '-', '-', '-']]
      : s.instances.map((i) => [s.name, i.id, `${i.address}:${i.port}`, i.zone ?? '', i.health, i.lastCheck ?? (i.source === 'file' ? '(file)' : '')]),
  );
  out.write(table(['SERVICE', 'INSTANCE', 'ADDRESS', 'ZONE', 'HEALTH', 'LAST CHECK'], rows));
  return 0;
}
