// A real process for the exactly-once test over gRPC (issue 2).
//   server: --role server            prints "listening <port>", serves until killed
//   client: --role client --server <host:port> --clients N --increments K
//           runs N counter clients, then reads the counter; prints one JSON line
// Both take --loss P --dup P --seed S to make their transport faulty.
import { parseArgs } from 'node:util';
import { nodeId } from '../../src/core/ids.js';
import type { Transport } from '../../src/core/transport.js';
import { rpcFromWire, rpcToWire } from '../../src/rpc/codec.js';
import type { RpcMessage, RpcTimer } from '../../src/rpc/messages.js';
import { FaultyTransport } from '../../src/server/faulty-transport.js';
import { GrpcTransport } from '../../src/server/grpc-transport.js';
import { NodeHost } from '../../src/runtime/node-host.js';
import { CounterClient, CounterServer, READ } from './counter.js';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string' },
    server: { type: 'string', default: '' },
    clients: { type: 'string', default: '5' },
    increments: { type: 'string', default: '200' },
    loss: { type: 'string', default: '0' },
    dup: { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
  },
});

const SERVER = nodeId('server');
const codec = { toWire: rpcToWire, fromWire: rpcFromWire };
const faults = (seed: number) => ({ lossRate: Number(args.loss), duplicateRate: Number(args.dup), seed });

async function transport(self: string, listen: string | undefined, seed: number): Promise<Transport<RpcMessage>> {
  const peers = new Map(args.server ? [[SERVER, args.server]] : []);
  const grpc = await GrpcTransport.start<RpcMessage>({
    self: nodeId(self),
    clusterId: 'counter-test',
    admits: () => true, // the server's clients dial it under ids it cannot know
    ...(listen === undefined ? {} : { listen }),
    peers,
    codec,
  });
  if (listen !== undefined) console.log(`listening ${grpc.port}`);
  return new FaultyTransport(grpc, faults(seed));
}

async function serve(): Promise<void> {
  await NodeHost.start<RpcMessage, RpcTimer>({
    id: SERVER,
    factory: (env) => new CounterServer(env),
    transport: await transport('server', '127.0.0.1:0', Number(args.seed)),
  });
}

/** Runs one counter client to completion: `increments` increments, then `extra` if given. */
async function runClient(id: string, increments: number, window: number, seed: number, extra?: Uint8Array) {
  let client: CounterClient | undefined;
  const host = await NodeHost.start<RpcMessage, RpcTimer>({
    id: nodeId(id),
    factory: (env) => (client = new CounterClient(env, { server: SERVER, increments, window, retryMs: 50 })),
    transport: await transport(id, undefined, seed),
  });
  const c = client;
  if (c === undefined) throw new Error('client not built');
  if (extra !== undefined) host.input(() => c.submit(extra));
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (!c.done()) return;
      clearInterval(poll);
      resolve();
    }, 20);
  });
  await host.close();
  return c;
}

async function main(): Promise<void> {
  if (args.role === 'server') return serve();
  const n = Number(args.clients);
  const k = Number(args.increments);
  const clients = await Promise.all(
    Array.from({ length: n }, (_, i) => runClient(`client${i}`, k, 1 + i, Number(args.seed) + 1 + i)),
  );
  const reader = await runClient('reader', 0, 1, 99, READ);
  const counter = reader.values[0] ?? -1;
  const report = clients.map((c) => ({ outcomes: [...c.outcomes], values: c.values, failures: c.failures }));
  console.log(JSON.stringify({ counter, clients: report }));
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
