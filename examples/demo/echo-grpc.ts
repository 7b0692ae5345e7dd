// A gRPC Echo server that names itself in every reply; `failEvery` makes every
// n-th call fail with UNAVAILABLE, to show retries.
import * as grpc from '@grpc/grpc-js';
import { demoPackageDefinition } from '../../protos/loader.ts';

const definition = grpc.loadPackageDefinition(demoPackageDefinition()) as any;
export const EchoService = definition.tessera.demo.v1.Echo as grpc.ServiceClientConstructor;

export interface EchoServer {
  name: string;
  port: number;
  calls: number;
  failEvery: number;
  close(): Promise<void>;
}

export async function startEchoServer(name: string, port = 0, host = '127.0.0.1'): Promise<EchoServer> {
  const server = new grpc.Server();
  const state: EchoServer = { name, port: 0, calls: 0, failEvery: 0, close: async () => {} };
  server.addService(EchoService.service, {
    Echo: (call: grpc.ServerUnaryCall<{ message: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      state.calls++;
      if (state.failEvery > 0 && state.calls % state.failEvery === 0) {
        callback({ code: grpc.status.UNAVAILABLE, details: `${name} is failing this call on purpose` });
        return;
      }
      callback(null, { message: call.request.message, backend: name });
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  state.close = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  return state;
}
