// Client Status Discovery Service (envoy.service.status.v3) on the xDS port: what
// each connected client was sent, per resource, and whether it ACKed or NACKed it,
// in the shape Envoy's and gRPC's tools read.
import * as grpc from '@grpc/grpc-js';
import { grpcPackageDefinition } from '../../../protos/loader.ts';
import { TypeUrl } from '../resources/type-urls.ts';
import type { StreamStatus, TypeStatus } from './stream.ts';

const CSDS_SERVICE = 'envoy.service.status.v3.ClientStatusDiscoveryService';

interface StringMatcher {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  ignore_case?: boolean;
  match_pattern?: string;
}

interface ClientStatusRequest {
  node_matchers?: { node_id?: StringMatcher; node_metadatas?: unknown[] }[];
  exclude_resource_contents?: boolean;
}

export class CsdsRequestError extends Error {
  readonly code = 'TESSERA_ERR_CSDS_REQUEST';
}

export function addCsdsService(server: grpc.Server, statuses: () => StreamStatus[]): void {
  const definition = grpc.loadPackageDefinition(grpcPackageDefinition());
  const csds = CSDS_SERVICE.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], definition);
  const answer = (request: ClientStatusRequest) => clientStatus(request, statuses());
  server.addService((csds as grpc.ServiceClientConstructor).service, {
    FetchClientStatus: (call: grpc.ServerUnaryCall<ClientStatusRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      try {
        callback(null, answer(call.request));
      } catch (err) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
      }
    },
    StreamClientStatus: (call: grpc.ServerDuplexStream<ClientStatusRequest, unknown>) => {
      call.on('data', (request: ClientStatusRequest) => {
        try {
          call.write(answer(request));
        } catch (err) {
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
        }
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
}

export function clientStatus(request: ClientStatusRequest, streams: StreamStatus[]) {
  const matchers = request.node_matchers ?? [];
  for (const m of matchers) {
    if (m.node_metadatas?.length) throw new CsdsRequestError('node_matchers[].node_metadatas is not supported; match on node_id');
  }
  const selected = streams.filter((s) => matchers.length === 0 || matchers.some((m) => matches(m.node_id, s.info.node.id ?? '')));
  return {
    config: selected.map((s) => ({
      node: s.info.node,
      generic_xds_configs: s.types.flatMap((t) => genericConfigs(t, !request.exclude_resource_contents)),
    })),
  };
}

const CONFIG_STATUS = { none: 'NOT_SENT', pending: 'STALE', acked: 'SYNCED', nacked: 'ERROR' } as const;
const CLIENT_STATUS = { none: 'REQUESTED', pending: 'REQUESTED', acked: 'ACKED', nacked: 'NACKED' } as const;

function genericConfigs(t: TypeStatus, withContents: boolean) {
  const lastUpdated = t.sentAt && { seconds: String(Math.floor(t.sentAt.getTime() / 1000)), nanos: (t.sentAt.getTime() % 1000) * 1e6 };
  return t.resources.map((r) => ({
    type_url: t.typeUrl,
    name: r.name,
    version_info: r.version,
    ...(withContents && r.resource && t.typeUrl !== TypeUrl.Secret ? { xds_config: r.resource.any } : {}),
    ...(lastUpdated ? { last_updated: lastUpdated } : {}),
    config_status: CONFIG_STATUS[t.answer],
    client_status: CLIENT_STATUS[t.answer],
    ...(t.answer === 'nacked' ? { error_state: { details: (t.error ?? '').slice(0, 4096), version_info: t.version ?? '' } } : {}),
  }));
}

function matches(m: StringMatcher | undefined, value: string): boolean {
  if (!m) return true;
  if (m.match_pattern && !['exact', 'prefix', 'suffix', 'contains'].includes(m.match_pattern)) {
    throw new CsdsRequestError(`node_id.${m.match_pattern} is not supported; use exact, prefix, suffix or contains`);
  }
  const v = m.ignore_case ? value.toLowerCase() : value;
  const norm = (s: string) => (m.ignore_case ? s.toLowerCase() : s);
  if (m.exact !== undefined) return v === norm(m.exact);
  if (m.prefix !== undefined) return v.startsWith(norm(m.prefix));
  if (m.suffix !== undefined) return v.endsWith(norm(m.suffix));
  if (m.contains !== undefined) return v.includes(norm(m.contains));
  return true;
}
