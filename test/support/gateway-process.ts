// Child process for the stalled-client test (test/client-gateway.stall.test.ts):
// a ClientGateway over a listening GrpcTransport, whose "node" answers every
// client command at once with a result of --reply-bytes bytes (a get of a
// large value). Prints "listening <port>"; on each stdin line "mem" it runs a
// full GC and prints one JSON line of its memory figures and gateway stats.
//
// Usage: node --expose-gc --import tsx test/support/gateway-process.ts --reply-bytes N --cluster-id ID
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { groupId, nodeId, shardId } from '../../src/core/ids.js';
import type { NodeMessage } from '../../src/paxos/group-env.js';
import type { GroupMessage } from '../../src/paxos/group-server.js';
import { nodeWireCodec } from '../../src/paxos/group-wire.js';
import { ClientGateway } from '../../src/server/client-gateway.js';
import { GrpcTransport } from '../../src/server/grpc-transport.js';

const { values: args } = parseArgs({
  options: { 'reply-bytes': { type: 'string', default: String(1 << 20) }, 'cluster-id': { type: 'string', default: 'c1' } },
});
const replyBytes = Number(args['reply-bytes']);

async function main(): Promise<void> {
  let port = 0;
  const gateway = await ClientGateway.start(args['cluster-id'], { id: nodeId('server'), groups: [groupId(1)] }, async (kv) => {
    const t = await GrpcTransport.start<NodeMessage<GroupMessage>>({
      self: nodeId('server'),
      clusterId: 'test',
      admits: () => false, // clients only: no peer streams
      listen: '127.0.0.1:0',
      peers: new Map(),
      codec: nodeWireCodec,
      services: [kv],
    });
    port = t.port;
    return t;
  });
  let answered = 0;
  gateway.onReceive((from, { group, message: m }) => {
    if (m.type !== 'ClientCommand' || m.command.kind !== 'request') return;
    // A fresh buffer per answer, as a get read from storage would be.
    const result = new Uint8Array(replyBytes).fill(answered++ % 251);
    const { session, seq } = m.command;
    gateway.send(from, [{ group, message: { type: 'ClientResult', shard: shardId(0), result: { kind: 'result', session, seq, result } } }]);
  });
  console.log(`listening ${port}`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'mem') continue;
    globalThis.gc?.();
    const mem = process.memoryUsage();
    const stats = gateway.stats;
    console.log(JSON.stringify({ rss: mem.rss, arrayBuffers: mem.arrayBuffers, external: mem.external, heapUsed: mem.heapUsed, answered, stats }));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
