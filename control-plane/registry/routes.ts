// The registry's admin API (DESIGN.md "Registry and admin HTTP API").
import type { Endpoint } from '../model/types.ts';
import { HttpError, type AdminRoute } from '../admin/router.ts';
import type { Registry } from './registry.ts';
import { checkInstanceId, checkServiceName, parseInstanceSpec, RegistrationError } from './spec.ts';

export interface RegistryRouteOptions {
  /** Instances from EndpointSlice files, and services declared in config. */
  fileEndpoints: () => Endpoint[];
  declaredServices: () => string[];
}

function validName(params: Record<string, string>): { service: string; id?: string } {
  try {
    checkServiceName(params.service);
    if (params.id !== undefined) checkInstanceId(params.id);
  } catch (err) {
    throw new HttpError(400, (err as Error).message, 'TESSERA_ERR_BAD_REGISTRATION');
  }
  return { service: params.service, id: params.id };
}

export function registryRoutes(registry: Registry, opts: RegistryRouteOptions): AdminRoute[] {
  const serviceView = (name: string) => ({
    name,
    instances: [
      ...opts
        .fileEndpoints()
        .filter((e) => e.service === name)
        .map((e) => ({ id: e.id, address: e.address, port: e.port, labels: e.labels, zone: e.zone, source: 'file' as const, health: e.health, lastCheck: null })),
      ...registry.view(name),
    ],
  });
  const allServices = () => [...new Set([...opts.declaredServices(), ...registry.services()])].sort();

  return [
    {
      method: 'PUT',
      pattern: '/api/v1/services/{service}/instances/{id}',
      mutates: true,
      handler: async ({ params, body }) => {
        const { service, id } = validName(params);
        const raw = (await body()).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw);
        } catch (err) {
          throw new HttpError(400, `the body is not valid JSON: ${(err as Error).message}`, 'TESSERA_ERR_BAD_JSON');
        }
        try {
          const { created } = await registry.register(service, id!, parseInstanceSpec(parsed));
          return { status: created ? 201 : 200, json: { service, id, created } };
        } catch (err) {
          if (err instanceof RegistrationError) throw new HttpError(400, err.message, err.code);
          throw err;
        }
      },
    },
    {
      method: 'DELETE',
      pattern: '/api/v1/services/{service}/instances/{id}',
      mutates: true,
      handler: async ({ params }) => {
        const { service, id } = validName(params);
        if (!(await registry.deregister(service, id!))) throw new HttpError(404, `no registered instance ${id} of ${service}`, 'TESSERA_ERR_NOT_FOUND');
        return { status: 200, json: { service, id, deleted: true } };
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/services/{service}/instances/{id}/heartbeat',
      mutates: true,
      handler: async ({ params }) => {
        const { service, id } = validName(params);
        const result = await registry.heartbeat(service, id!);
        if (!result) throw new HttpError(404, `no registered instance ${id} of ${service}`, 'TESSERA_ERR_NOT_FOUND');
        if (result === 'not-ttl') throw new HttpError(400, `instance ${id} of ${service} has no ttl check to pass`, 'TESSERA_ERR_NOT_TTL');
        return { status: 200, json: { service, id, health: 'healthy' } };
      },
    },
    { method: 'GET', pattern: '/api/v1/services', handler: () => ({ status: 200, json: { services: allServices().map(serviceView) } }) },
    {
      method: 'GET',
      pattern: '/api/v1/services/{service}',
      handler: ({ params }) => {
        const { service } = validName(params);
        if (!allServices().includes(service)) throw new HttpError(404, `no service ${service}`, 'TESSERA_ERR_NOT_FOUND');
        return { status: 200, json: serviceView(service) };
      },
    },
  ];
}
