// The gRPC face of the xDS server: ADS in both variants over one cache interface.
// It knows nothing of services or routes.
import * as grpc from '@grpc/grpc-js';
import { grpcPackageDefinition } from '../../../protos/loader.ts';
import type { ResourceCache } from '../cache/cache.ts';
import { addCsdsService } from './csds.ts';
import { DeltaStream } from './delta.ts';
import { SotwStream } from './sotw.ts';
import type { StreamStatus, StreamTransport, XdsStream } from './stream.ts';
import type { DeltaDiscoveryRequest, DiscoveryRequest, NodeGrouper, XdsCallbacks } from './types.ts';
import { decodeSotwRequest, EncodedResponse } from './wire.ts';

export interface XdsServerOptions {
  cache: ResourceCache;
  group: NodeGrouper;
  callbacks?: XdsCallbacks;
  /** A stream whose client takes no response for this long is closed (default 60 s). */
  stuckTimeoutMs?: number;
}

const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

export class XdsServer {
  readonly grpc: grpc.Server;
  private readonly streams = new Set<XdsStream>();

  constructor(private readonly options: XdsServerOptions) {
    this.grpc = new grpc.Server({
      // Notice dead peers (a killed Envoy) instead of holding their streams forever.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      'grpc.max_receive_message_length': 4 * 1024 * 1024,
    });
    const definition = grpc.loadPackageDefinition(grpcPackageDefinition());
    const ads = ADS_SERVICE.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], definition);
    const service = (ads as grpc.ServiceClientConstructor).service;
    this.grpc.addService(passEncodedResponses(service), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, EncodedResponse>) =>
        this.serve(call, new SotwStream(transportOf(call), this.deps())),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, EncodedResponse>) =>
        this.serve(call, new DeltaStream(transportOf(call), this.deps())),
    });
    addCsdsService(this.grpc, () => this.statuses());
  }

  private deps() {
    return {
      cache: this.options.cache,
      group: this.options.group,
      callbacks: this.options.callbacks ?? {},
      stuckTimeoutMs: this.options.stuckTimeoutMs,
    };
  }

  private serve<Req, Res>(
    call: grpc.ServerDuplexStream<Req, Res>,
    stream: XdsStream & { onRequest(r: Req): void },
  ): void {
    this.streams.add(stream);
    const done = () => {
      this.streams.delete(stream);
      stream.close();
    };
    call.on('data', (request: Req) => {
      try {
        stream.onRequest(request);
      } catch (err) {
        this.options.callbacks?.onProtocolError?.(undefined, `request handling failed: ${(err as Error).stack}`);
      }
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
  }

  /** Binds, e.g. `127.0.0.1:0`; resolves to the bound port. */
  /** `credentials`: TLS for the xDS port (--xds-tls); plaintext by default. */
  listen(address: string, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    return new Promise((resolve, reject) => {
      this.grpc.bindAsync(address, credentials, (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
  }

  /** Every stream that has said who it is, with what it was sent (CSDS). */
  statuses(): StreamStatus[] {
    return [...this.streams].map((s) => s.status()).filter((s): s is StreamStatus => s !== undefined);
  }

  get streamCount(): number {
    return this.streams.size;
  }

  async close(): Promise<void> {
    for (const s of [...this.streams]) s.close();
    this.grpc.forceShutdown();
  }
}

/** Responses are encoded by the streams themselves (xds/server/wire.ts), so the
 *  service's serializer passes their bytes through; SotW requests are read by
 *  wire.ts's decoder, which falls back to proto-loader's. */
function passEncodedResponses(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const passThrough = (name: string, method: grpc.MethodDefinition<unknown, unknown>) => {
    const serialize = method.responseSerialize;
    const deserialize = method.requestDeserialize as (bytes: Buffer) => DiscoveryRequest;
    return {
      ...method,
      responseSerialize: (m: unknown) => (m instanceof EncodedResponse ? m.bytes : serialize(m)),
      ...(name === 'StreamAggregatedResources' ? { requestDeserialize: (bytes: Buffer) => decodeSotwRequest(bytes, deserialize) } : {}),
    };
  };
  return Object.fromEntries(Object.entries(service).map(([name, method]) => [name, passThrough(name, method)]));
}

function transportOf<Req>(call: grpc.ServerDuplexStream<Req, EncodedResponse>): StreamTransport {
  return {
    write: (m: EncodedResponse) => call.write(m),
    onDrain: (listener: () => void) => call.on('drain', listener),
    end: (error?: { code: number; details: string }) => {
      if (error) call.emit('error', { code: error.code, details: error.details });
      else call.end();
    },
    peer: call.getPeer(),
  };
}
