// What the simulated Envoy-like ADS clients of both benchmarks (bench/ads-clients.ts,
// bench/peer/clients.ts) share: the node a client says it is, and which names a
// response makes it want next.
import { decodeAny } from '../control-plane/xds/resources/codec.ts';
import { references } from '../control-plane/xds/resources/references.ts';

/** Client i is a sidecar of service svc-(i mod services), with that service's inbound
 *  port, as `tessera bootstrap` would describe it: one proxy group per service. */
export function benchNode(i: number, services: number) {
  const service = `svc-${i % services}`;
  return {
    id: `bench-${i}`,
    cluster: service,
    user_agent_name: 'envoy',
    metadata: {
      fields: {
        tessera: {
          structValue: {
            fields: {
              mode: { stringValue: 'sidecar' },
              service: { stringValue: service },
              inbound: {
                structValue: { fields: { port: { numberValue: 20000 + (i % services) }, app_port: { numberValue: 30000 } } },
              },
            },
          },
        },
      },
    },
  };
}

/** Names a response makes the client want next (EDS from CDS, RDS from LDS). */
export function wants(typeUrl: string, anys: { type_url: string; value: Buffer }[]) {
  return anys.flatMap((a) => references(typeUrl, decodeAny(a)));
}
