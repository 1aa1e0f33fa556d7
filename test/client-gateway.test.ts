// ClientGateway over a real gRPC server, in process: answers reach the
// generated client intact (they travel pre-encoded), and the bytes of every
// answer stop counting as unflushed once its call is over — which rests on
// grpc-js emitting 'cancelled' after a call's trailers are sent.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeId } from '../src/core/ids.js';
import { KvServiceClient } from '../src/gen/shardpax/v1/client.js';
import type { AmoResult } from '../src/gen/shardpax/v1/session.js';
import type { GroupMessage } from '../src/kv/group-server.js';
import { groupWireCodec } from '../src/kv/wire.js';
import { ClientGateway } from '../src/server/client-gateway.js';
import { GrpcTransport } from '../src/server/grpc-transport.js';

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

async function gateway(answerBytes: number): Promise<{ g: ClientGateway; port: number }> {
  let port = 0;
  const g = await ClientGateway.start(async (kv) => {
    const t = await GrpcTransport.start<GroupMessage>({
      self: nodeId('server'),
      clusterId: 'test',
      admits: () => false, // clients only: no peer streams
      listen: '127.0.0.1:0',
      peers: new Map(),
      codec: groupWireCodec,
      services: [kv],
    });
    port = t.port;
    return t;
  });
  open.push(g);
  g.onReceive((from, m) => {
    if (m.type !== 'ClientCommand' || m.command.kind !== 'request') return;
    const { session, seq } = m.command;
    g.send(from, [{ type: 'ClientResult', result: { kind: 'result', session, seq, result: new Uint8Array(answerBytes).fill(seq % 256) } }]);
  });
  return { g, port };
}

function submit(c: KvServiceClient, seq: number): Promise<AmoResult> {
  return new Promise((resolve, reject) =>
    c.submit(
      { kind: { $case: 'request', value: { session: 7, seq, ackedBelow: 0, command: new Uint8Array(1) } } },
      (err, res) => (err === null ? resolve(res) : reject(err)),
    ),
  );
}

describe('ClientGateway', () => {
  it('answers calls, and holds no answer bytes once the calls are over', async () => {
    const { g, port } = await gateway(100_000);
    const c = new KvServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    open.push(c);
    const answers = await Promise.all(Array.from({ length: 64 }, (_, i) => submit(c, i + 1)));
    answers.forEach((a, i) => {
      expect(a.kind?.$case).toBe('result');
      if (a.kind?.$case !== 'result') return;
      expect(a.kind.value.seq).toBe(i + 1);
      expect(Buffer.from(a.kind.value.result).equals(Buffer.alloc(100_000, (i + 1) % 256))).toBe(true);
    });
    // 'cancelled' follows the trailers by a tick.
    await new Promise((r) => setTimeout(r, 50));
    expect(g.stats).toEqual({ refusedCalls: 0, refusedAnswers: 0, unflushedBytes: 0, unflushedConnections: 0 });
  });
});
