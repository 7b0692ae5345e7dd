// A ParallelRun (control-plane/delivery/parallel-run.ts): sidecars mirror the target's
// requests to the control plane's comparator. Envoy sends the shadow request and
// discards its answer; the caller is answered by the route's own cluster only.
// A sidecar with a mesh certificate mirrors over mTLS (its SDS certificate, the
// comparator's SPIFFE ID checked), as it calls a STRICT service: the comparator takes
// a STRICT target's mirrors only so (control-plane/delivery/mirror-acceptance.ts).
import { comparatorSpiffeId } from '../model/types.ts';
import { socketAddress } from './config-source.ts';
import type { TranslateContext } from './context.ts';
import { duration } from './duration.ts';
import type { Cluster } from './envoy-types.ts';
import type { NamedResource } from './index.ts';
import { COMPARATOR_CLUSTER } from './names.ts';
import { trustDomain, upstreamTlsSocket } from './tls.ts';

/** Only sidecars mirror (grpc-js-xds has no request mirroring); the route action
 *  (route-action.ts) adds the mirror policy to the rules of a ParallelRun. */
export const mirrorsToComparator = (ctx: TranslateContext) => ctx.proxy.kind === 'sidecar' && ctx.model.comparator !== undefined;

export function comparatorCluster(ctx: TranslateContext): NamedResource | undefined {
  if (!mirrorsToComparator(ctx)) return undefined;
  const { address, port } = ctx.model.comparator!;
  const name = COMPARATOR_CLUSTER;
  const resource: Cluster = {
    name,
    type: 'STATIC',
    connect_timeout: duration(1000),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(address, port) } }] }] },
    // Whatever the mTLS mode: the comparator's port takes TLS from any sidecar that has a certificate.
    ...(ctx.proxy.kind === 'sidecar' && ctx.proxy.sds ? { transport_socket: upstreamTlsSocket([comparatorSpiffeId(trustDomain(ctx))]) } : {}),
  };
  return { name, resource };
}
