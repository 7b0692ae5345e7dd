// The registry's admin API (DESIGN.md "Registry and admin HTTP API").
import type { Endpoint } from '../model/types.ts';
import { HttpError, type AdminRoute } from '../admin/router.ts';
import type { Registry } from './registry.ts';
import { checkInstanceId, checkServiceName, parseInstanceSpec, RegistrationError } from './spec.ts';
import { StoreError, StoreUnavailableError } from './store.ts';

export interface RegistryRouteOptions {
  /** Instances from EndpointSlice files, and services declared in config. */
  fileEndpoints: () => Endpoint[];
  declaredServices: () => string[];
  log?: (line: string) => void;
}

/** A store that failed says why, to the caller (500, or 503 when it is away) and the log. */
function storeFailure(err: unknown, what: string, log?: (line: string) => void): never {
  if (err instanceof StoreError) {
    log?.(`registry: ${what} failed: ${err.message}`);
    throw new HttpError(err instanceof StoreUnavailableError ? 503 : 500, err.message, err.code);
  }
  throw err;
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
          storeFailure(err, `PUT ${service}/${id}`, opts.log);
        }
      },
    },
    {
      method: 'DELETE',
      pattern: '/api/v1/services/{service}/instances/{id}',
      mutates: true,
      handler: async ({ params }) => {
        const { service, id } = validName(params);
        const deleted = await registry.deregister(service, id!).catch((err) => storeFailure(err, `DELETE ${service}/${id}`, opts.log));
        if (!deleted) throw new HttpError(404, `no registered instance ${id} of ${service}`, 'TESSERA_ERR_NOT_FOUND');
        return { status: 200, json: { service, id, deleted: true } };
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/services/{service}/instances/{id}/heartbeat',
      mutates: true,
      handler: async ({ params }) => {
        const { service, id } = validName(params);
        const result = await registry.heartbeat(service, id!).catch((err) => storeFailure(err, `heartbeat ${service}/${id}`, opts.log));
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
