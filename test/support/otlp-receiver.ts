// A small OTLP/gRPC trace receiver (opentelemetry.proto.collector.trace.v1.TraceService
// /Export) on 127.0.0.1, for tests that check what Envoy's OpenTelemetry tracer sends.
// The messages are decoded by the code the OpenTelemetry project generated from its
// own protos (@opentelemetry/otlp-transformer 0.214, the last release that ships
// them; later ones carry a hand-written encoder only), so no proto is copied here.
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import type { Owner } from './processes.ts';

const require = createRequire(import.meta.url);
const root: any = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const v1 = root.opentelemetry.proto.collector.trace.v1;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** SPAN_KIND_SERVER, SPAN_KIND_CLIENT, … */
  kind: string;
  /** The resource's service.name. */
  serviceName: string;
  attributes: Record<string, unknown>;
}

export interface OtlpReceiver {
  address: string;
  spans: ReceivedSpan[];
  /** Export calls received (each may carry several spans). */
  exports: number;
  close(): Promise<void>;
}

const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('hex');

function attributes(list: { key: string; value: Record<string, unknown> }[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    const v = value ?? {};
    out[key] = v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue ?? null;
  }
  return out;
}

export async function startOtlpReceiver(owner: Owner): Promise<OtlpReceiver> {
  const receiver: OtlpReceiver = { address: '', spans: [], exports: 0, close: async () => {} };
  const server = new grpc.Server();
  const definition: grpc.ServiceDefinition = {
    Export: {
      path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: unknown) => Buffer.from(v1.ExportTraceServiceRequest.encode(m).finish()),
      requestDeserialize: (b: Buffer) => v1.ExportTraceServiceRequest.decode(b),
      responseSerialize: (m: unknown) => Buffer.from(v1.ExportTraceServiceResponse.encode(m).finish()),
      responseDeserialize: (b: Buffer) => v1.ExportTraceServiceResponse.decode(b),
    },
  };
  server.addService(definition, {
    Export: (call: grpc.ServerUnaryCall<any, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      receiver.exports++;
      const request = v1.ExportTraceServiceRequest.toObject(call.request, { enums: String, longs: String });
      for (const rs of request.resourceSpans ?? []) {
        const serviceName = String(attributes(rs.resource?.attributes)['service.name'] ?? '');
        for (const ss of rs.scopeSpans ?? []) {
          for (const span of ss.spans ?? []) {
            receiver.spans.push({
              traceId: hex(span.traceId),
              spanId: hex(span.spanId),
              parentSpanId: hex(span.parentSpanId),
              name: span.name,
              kind: span.kind,
              serviceName,
              attributes: attributes(span.attributes),
            });
          }
        }
      }
      callback(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  receiver.address = `127.0.0.1:${port}`;
  receiver.close = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  owner.teardown(() => {
    server.forceShutdown();
  });
  return receiver;
}
