// A raw ADS client over @grpc/grpc-js, for protocol tests and the benchmark:
// it sends exactly the requests a test says and records every response.
import * as grpc from '@grpc/grpc-js';
import { grpcPackageDefinition } from '../../protos/loader.ts';
import type {
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  DiscoveryRequest,
  DiscoveryResponse,
} from '../../control-plane/xds/server/types.ts';

const definition = grpc.loadPackageDefinition(grpcPackageDefinition()) as any;
const AdsClient = definition.envoy.service.discovery.v3.AggregatedDiscoveryService as grpc.ServiceClientConstructor;

export class AdsStream<Req, Res> {
  readonly responses: Res[] = [];
  private waiters: (() => void)[] = [];
  readonly call: grpc.ClientDuplexStream<Req, Res>;

  constructor(call: grpc.ClientDuplexStream<Req, Res>) {
    this.call = call;
    call.on('data', (r: Res) => {
      this.responses.push(r);
      for (const w of this.waiters.splice(0)) w();
    });
    call.on('error', () => {});
  }

  send(req: Req): void {
    this.call.write(req);
  }

  /** Resolves with the next response after `count` responses have arrived in all. */
  async nth(count: number, timeoutMs = 3000): Promise<Res> {
    const deadline = Date.now() + timeoutMs;
    while (this.responses.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} responses, got ${this.responses.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.responses[count - 1];
  }

  /** Waits a little and says whether nothing more arrived. */
  async quiet(after: number, ms = 300): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.responses.length === after;
  }

  close(): void {
    this.call.end();
  }
}

export function connect(port: number) {
  const client = new AdsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    sotw: () => new AdsStream<DiscoveryRequest, DiscoveryResponse>(client.StreamAggregatedResources()),
    delta: () => new AdsStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(client.DeltaAggregatedResources()),
    close: () => client.close(),
  };
}
