// ClientGateway over a real gRPC server, in process: answers reach the
// generated client intact (they travel pre-encoded), and the bytes of every
// answer stop counting as unflushed once its call is over — which rests on
// grpc-js emitting 'cancelled' after a call's trailers are sent. A call that
// names another cluster, or none, is refused before it reaches the node.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { groupId, nodeId, shardId } from '../src/core/ids.js';
import { KvServiceClient } from '../src/gen/shardpax/v1/client.js';
import type { AmoResult } from '../src/gen/shardpax/v1/session.js';
import type { NodeMessage } from '../src/paxos/group-env.js';
import type { GroupMessage } from '../src/paxos/group-server.js';
import { nodeWireCodec } from '../src/paxos/group-wire.js';
import { CLUSTER_ID_METADATA, NODE_CLUSTER_ID_METADATA } from '../src/runtime/cluster-id-metadata.js';
import { ClientGateway } from '../src/server/client-gateway.js';
import { GrpcTransport } from '../src/server/grpc-transport.js';

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

const CLUSTER = 'cluster-a';

async function gateway(answerBytes: number): Promise<{ g: ClientGateway; port: number; received: () => number }> {
  let port = 0;
  let received = 0;
  const g = await ClientGateway.start(CLUSTER, { id: nodeId('server'), groups: [groupId(0), groupId(1)] }, async (kv) => {
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
  open.push(g);
  g.onReceive((from, { group, message: m }) => {
    if (m.type !== 'ClientCommand' || m.command.kind !== 'request') return;
    received++;
    const { session, seq } = m.command;
    const result = new Uint8Array(answerBytes).fill(seq % 256);
    g.send(from, [{ group, message: { type: 'ClientResult', shard: shardId(0), result: { kind: 'result', session, seq, result } } }]);
  });
  return { g, port, received: () => received };
}

/** A Submit for `group` naming `cluster` (null: naming none). */
function submit(c: KvServiceClient, seq: number, cluster: string | null = CLUSTER, group = 1): Promise<AmoResult> {
  const metadata = new grpc.Metadata();
  if (cluster !== null) metadata.set(CLUSTER_ID_METADATA, cluster);
  return new Promise((resolve, reject) =>
    c.submit(
      { group, command: { kind: { $case: 'request', value: { session: 7, seq, ackedBelow: 0, command: new Uint8Array(1) } }, shard: 0 } },
      metadata,
      (err, res) => (err === null ? resolve(res) : reject(err)),
    ),
  );
}

async function refusal(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) throw new Error('expected the call to be refused');
  return err as grpc.ServiceError;
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

  it('refuses a call naming another cluster, or none, before it reaches the node', async () => {
    const { g, port, received } = await gateway(10);
    const c = new KvServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    open.push(c);

    const foreign = await refusal(submit(c, 1, 'cluster-b'));
    expect(foreign.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(foreign.details).toBe(
      'this node belongs to cluster cluster-a, the cluster file says cluster-b: ' +
        'the file points at a node of another cluster (check its addresses, or use the right cluster file)',
    );
    expect(foreign.metadata.get(NODE_CLUSTER_ID_METADATA)).toEqual(['cluster-a']);

    const anonymous = await refusal(submit(c, 2, null));
    expect(anonymous.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(anonymous.details).toContain(`the call names no cluster`);

    expect(received()).toBe(0);
    const ok = await submit(c, 3);
    expect(ok.kind?.$case).toBe('result');
    expect(received()).toBe(1);
    expect(g.stats.refusedCalls).toBe(0); // refusals for identity are not the memory bound's
  });

  it('refuses a call for a group the node does not host, naming the group and the node', async () => {
    const { port, received } = await gateway(10);
    const c = new KvServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    open.push(c);
    const wrong = await refusal(submit(c, 1, CLUSTER, 7));
    expect(wrong.code).toBe(grpc.status.NOT_FOUND);
    expect(wrong.details).toBe('node server does not host group 7 (it hosts groups: 0, 1); check the cluster file');
    expect(received()).toBe(0);
    expect((await submit(c, 2, CLUSTER, 0)).kind?.$case).toBe('result');
    expect(received()).toBe(1);
  });
});
