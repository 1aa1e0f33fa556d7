// The gRPC transport's memory bounds (issue 6, item 6): per-peer queues and
// frames bounded in bytes as well as messages (the pure framing first, then
// two real transports on loopback), oversized messages dropped before they
// could break a stream. Its door (issue 7, item 3): a stream carries
// messages only after a valid hello each way; malformed frames and messages
// are counted by reason and dropped.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type NodeId, nodeId } from '../src/core/ids.js';
import { PeerFrame, type PeerHello, type PeerMessage, PeerServiceService } from '../src/gen/shardpax/v1/peer.js';
import { WireError } from '../src/rpc/codec.js';
import { MessageQueue, PeerQueue, SMALL_ENTRY_BYTES, takeFrame } from '../src/server/frame-queue.js';
import { GrpcTransport, MAX_WIRE_MESSAGE_BYTES, type WireCodec } from '../src/server/grpc-transport.js';

const MIB = 1024 * 1024;

describe('takeFrame', () => {
  const queueOf = (sizes: readonly number[]) => {
    const q = new MessageQueue({ maxMessages: 1e9, maxBytes: 1e15 });
    sizes.forEach((n, i) => q.push(new Uint8Array(n).fill(i % 256)));
    return q;
  };
  const frames = (sizes: readonly number[], maxMessages: number, maxBytes: number) => {
    const q = queueOf(sizes);
    const out: number[][] = [];
    while (q.length > 0) out.push(takeFrame(q, maxMessages, maxBytes).map((e) => e.length));
    return out;
  };

  it('fills a frame until the next message would pass the byte bound', () => {
    expect(frames([4, 4, 4, 1], 100, 10)).toEqual([[4, 4], [4, 1]]);
    expect(frames([10, 1], 100, 10)).toEqual([[10], [1]]);
  });

  it('sends a message larger than the byte bound alone', () => {
    expect(frames([3, 25, 3], 100, 10)).toEqual([[3], [25], [3]]);
  });

  it('holds at most maxMessages', () => {
    expect(frames([1, 1, 1, 1, 1], 2, 100)).toEqual([[1, 1], [1, 1], [1]]);
  });

  it('cuts the queue, in order, into maximal frames within both bounds', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 600 }),
        (sizes, maxMessages, maxBytes) => {
          const out = frames(sizes, maxMessages, maxBytes);
          expect(out.flat()).toEqual(sizes);
          let next = 0;
          for (const f of out) {
            next += f.length;
            const bytes = f.reduce((a, b) => a + b, 0);
            expect(f.length).toBeGreaterThanOrEqual(1);
            expect(f.length).toBeLessThanOrEqual(maxMessages);
            if (f.length > 1) expect(bytes).toBeLessThanOrEqual(maxBytes);
            // Maximal: the message after it would have passed a bound.
            const following = sizes[next];
            if (following !== undefined) {
              expect(f.length === maxMessages || bytes + following > maxBytes).toBe(true);
            }
          }
        },
      ),
    );
  });
});

describe('PeerQueue', () => {
  it('sends small entries ahead of bulk ones queued earlier, each lane in order', () => {
    const q = new PeerQueue({ maxMessages: 100, maxBytes: 1 << 20 });
    const big = (n: number) => new Uint8Array(SMALL_ENTRY_BYTES + 1).fill(n);
    const small = (n: number) => new Uint8Array(10).fill(n);
    for (const e of [big(1), big(2), small(3), big(4), small(5)]) q.push(e);
    expect(q.length).toBe(5);
    const order: number[] = [];
    for (let e = q.shift(); e !== undefined; e = q.shift()) order.push(e[0] ?? -1);
    expect(order).toEqual([3, 5, 1, 2, 4]);
  });

  it('bounds the small lane to an eighth of the bytes, dropping its oldest', () => {
    const q = new PeerQueue({ maxMessages: 1000, maxBytes: 8000 });
    for (let i = 0; i < 20; i++) q.push(new Uint8Array(100).fill(i));
    expect(q.bytes).toBe(1000);
    expect(q.peek()?.[0]).toBe(10);
  });
});

describe('MessageQueue', () => {
  it('drops the oldest entries past either bound, and says how many and how large', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 100 }), { maxLength: 80 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 100, max: 400 }),
        (sizes, maxMessages, maxBytes) => {
          const q = new MessageQueue({ maxMessages, maxBytes });
          const model: number[] = [];
          let dropped = 0;
          let droppedBytes = 0;
          sizes.forEach((n, i) => {
            const d = q.push(new Uint8Array(n).fill(i % 256));
            dropped += d.messages;
            droppedBytes += d.bytes;
            model.push(n);
            while (model.length > maxMessages || model.reduce((a, b) => a + b, 0) > maxBytes) model.shift();
          });
          expect(q.length).toBe(model.length);
          expect(q.bytes).toBe(model.reduce((a, b) => a + b, 0));
          expect(dropped).toBe(sizes.length - model.length);
          expect(droppedBytes).toBe(sizes.reduce((a, b) => a + b, 0) - q.bytes);
          const kept: number[] = [];
          for (let e = q.shift(); e !== undefined; e = q.shift()) kept.push(e.length);
          expect(kept).toEqual(model);
          expect(q.bytes).toBe(0);
        },
      ),
    );
  });
});

/** Test messages: a number and a payload, carried as a client command. */
interface Msg {
  readonly seq: number;
  readonly payload: Uint8Array;
}

const codec: WireCodec<Msg> = {
  toWire: (m) => ({
    body: {
      $case: 'clientCommand',
      value: { kind: { $case: 'request', value: { session: 1, seq: m.seq, ackedBelow: 0, command: m.payload } }, shard: 0 },
    },
  }),
  fromWire: (w: PeerMessage) => {
    if (w.body?.$case !== 'clientCommand' || w.body.value.kind?.$case !== 'request') throw new WireError('not a test message');
    return { seq: w.body.value.kind.value.seq, payload: w.body.value.kind.value.command };
  },
};

const open: Array<{ close(): Promise<void> | void }> = [];
afterEach(async () => {
  for (const t of open.splice(0).reverse()) await t.close();
});

const CLUSTER = 'test-cluster';

async function node(
  self: string,
  peers: Record<string, number>,
  options: { maxQueueBytes?: number; clusterId?: string; admits?: (peer: NodeId) => boolean; handshakeTimeoutMs?: number } = {},
): Promise<{ t: GrpcTransport<Msg>; got: Array<{ from: NodeId; m: Msg }> }> {
  const t = await GrpcTransport.start<Msg>({
    self: nodeId(self),
    clusterId: CLUSTER,
    admits: () => true,
    listen: '127.0.0.1:0',
    peers: new Map(Object.entries(peers).map(([id, port]) => [nodeId(id), `127.0.0.1:${port}`])),
    codec,
    ...options,
  });
  open.push(t);
  const got: Array<{ from: NodeId; m: Msg }> = [];
  t.onReceive((from, m) => got.push({ from, m }));
  return { t, got };
}

async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const msg = (seq: number, bytes: number): Msg => ({ seq, payload: new Uint8Array(bytes).fill(seq % 256) });

describe('GrpcTransport', () => {
  it('splits a batch larger than one gRPC message into frames by bytes', async () => {
    const b = await node('b', {});
    const a = await node('a', { b: b.t.port }); // the smaller id dials
    const batch = [1, 2, 3, 4, 5].map((i) => msg(i, 3 * MIB)); // 15 MiB: one frame would pass MAX_WIRE_MESSAGE_BYTES
    a.t.send(nodeId('b'), batch);
    await until('five 3 MiB messages', () => b.got.length === 5);
    expect(b.got.map((g) => [g.from, g.m.seq, g.m.payload.length])).toEqual(batch.map((m) => ['a', m.seq, 3 * MIB]));
    expect(a.t.stats.droppedMessages).toBe(0);
  });

  it('drops a message too large for any frame, counts it, and keeps the stream', async () => {
    const b = await node('b', {});
    const a = await node('a', { b: b.t.port });
    a.t.send(nodeId('b'), [msg(1, MAX_WIRE_MESSAGE_BYTES), msg(2, 10)]);
    await until('the small message', () => b.got.length === 1);
    expect(b.got[0]?.m.seq).toBe(2);
    expect(a.t.stats).toMatchObject({ droppedMessages: 1, oversizedMessages: 1 });
    expect(a.t.stats.droppedBytes).toBeGreaterThan(MAX_WIRE_MESSAGE_BYTES);
  });

  it('bounds a queue to an absent peer in bytes, keeping the newest messages', async () => {
    // 'z' knows 'y' as a peer but waits to be dialed by it ('y' < 'z'); y starts later: meanwhile z's queue to y fills.
    const z = await node('z', { y: 1 }, { maxQueueBytes: 1 * MIB });
    const sent = Array.from({ length: 10 }, (_, i) => msg(i, 256 * 1024));
    for (const m of sent) z.t.send(nodeId('y'), [m]);
    // Each entry is 256 KiB plus a few dozen bytes of framing: three fit in 1 MiB.
    expect(z.t.stats.droppedMessages).toBe(7);
    expect(z.t.stats.droppedBytes).toBeGreaterThan(7 * 256 * 1024);
    expect(z.t.stats.droppedBytes).toBeLessThan(7 * (256 * 1024 + 64));
    const y = await node('y', { z: z.t.port });
    await until('the queued messages', () => y.got.length === 3);
    expect(y.got.map((g) => g.m.seq)).toEqual([7, 8, 9]);
  });

  it('queues nothing for a node that is neither a peer nor connected (an ended client call, say)', async () => {
    const a = await node('a', {});
    a.t.send(nodeId('rpc:7'), [msg(1, 1024)]);
    expect(a.t.stats.droppedMessages).toBe(1);
  });

  it('counts and drops malformed frames and messages without ending the stream', async () => {
    const a = await node('a', {});
    const stream = rawStream(a.t.port);
    stream.write(frame('x', [], { clusterId: CLUSTER, to: 'a' })); // introduces 'x'
    stream.write(Buffer.from([0x0f])); // field 1 with wire type 7: not protobuf
    stream.write(frame('x', [{ body: undefined }])); // decodes, but the codec refuses it
    stream.write(frame('someone-else', [codec.toWire(msg(1, 1))])); // not this stream's peer
    stream.write(frame('x', [codec.toWire(msg(2, 1))], { clusterId: CLUSTER, to: 'a' })); // a second hello
    stream.write(frame('x', [codec.toWire(msg(3, 1))]));
    await until('the valid message', () => a.got.length === 1);
    expect(a.got[0]).toMatchObject({ from: 'x', m: { seq: 3 } });
    expect(reasons(a.t)).toEqual({
      'frame-undecodable': 1,
      'message-undecodable': 1,
      'frame-wrong-sender': 1,
      'frame-repeated-hello': 1,
    });
    expect(a.t.stats.droppedMessages).toBe(0);
  });
});

describe('GrpcTransport handshake', () => {
  const refusals: Array<[string, (peer: number) => Buffer, string]> = [
    // Issue 7's forged frame: a stranger's first frame carries a message, and no hello.
    ['no hello', () => frame('n9', [codec.toWire(msg(1, 1))]), 'handshake-missing'],
    ['a first frame that does not decode', () => Buffer.from([0xff, 0xff]), 'handshake-missing'],
    ['a hello of another cluster', () => frame('x', [], { clusterId: 'other', to: 'a' }), 'handshake-wrong-cluster'],
    ['a hello meant for another node', () => frame('x', [], { clusterId: CLUSTER, to: 'b' }), 'handshake-wrong-node'],
    ['a hello from a node it does not admit', () => frame('n9', [], { clusterId: CLUSTER, to: 'a' }), 'handshake-not-member'],
    ['a hello that is not a node id', () => frame('', [], { clusterId: CLUSTER, to: 'a' }), 'handshake-not-member'],
    ['a hello in its own name', () => frame('a', [], { clusterId: CLUSTER, to: 'a' }), 'handshake-not-member'],
    ['a hello from a node it dials itself', () => frame('b', [], { clusterId: CLUSTER, to: 'a' }), 'handshake-wrong-direction'],
    [
      'a hello with messages',
      () => frame('x', [codec.toWire(msg(1, 1))], { clusterId: CLUSTER, to: 'a' }),
      'handshake-missing',
    ],
  ];
  for (const [what, first, reason] of refusals) {
    it(`closes a stream that opens with ${what}, and counts it`, async () => {
      const a = await node('a', { b: 1 }, { admits: (p) => p !== 'n9' }); // 'a' dials 'b'
      const stream = rawStream(a.t.port);
      const closed = statusOf(stream);
      stream.write(first(a.t.port));
      stream.write(frame('x', [codec.toWire(msg(2, 1))])); // would be valid on an open stream
      expect(await closed).toBe(grpc.status.PERMISSION_DENIED);
      expect(reasons(a.t)).toEqual({ [reason]: 1 });
      expect(a.got).toEqual([]);
    });
  }

  it('closes a stream that says nothing within the handshake timeout', async () => {
    const a = await node('a', {}, { handshakeTimeoutMs: 200 });
    const stream = rawStream(a.t.port);
    expect(await statusOf(stream)).toBe(grpc.status.PERMISSION_DENIED);
    expect(reasons(a.t)).toEqual({ 'handshake-timeout': 1 });
  });

  it('answers a valid hello with its own, then delivers', async () => {
    const a = await node('a', {});
    const stream = rawStream(a.t.port);
    const answers: PeerFrame[] = [];
    stream.on('data', (b: Buffer) => answers.push(PeerFrame.decode(b)));
    stream.write(frame('x', [], { clusterId: CLUSTER, to: 'a' }));
    stream.write(frame('x', [codec.toWire(msg(1, 1))]));
    await until('the message', () => a.got.length === 1);
    a.t.send(nodeId('x'), [msg(2, 1)]);
    await until('the answer and the reply', () => answers.length === 2);
    expect(answers[0]).toEqual({ from: 'a', messages: [], hello: { clusterId: CLUSTER, to: 'x' } });
    expect(answers[1]?.messages.length).toBe(1);
    expect(reasons(a.t)).toEqual({});
  });

  it('a dialer whose hello is refused counts it, and sends nothing', async () => {
    const b = await node('b', {}, { clusterId: 'other' });
    const a = await node('a', { b: b.t.port });
    a.t.send(nodeId('b'), [msg(1, 1)]);
    await until('both ends to count', () => b.t.invalid.total > 0 && a.t.invalid.total > 0);
    expect(reasons(b.t)).toMatchObject({ 'handshake-wrong-cluster': expect.any(Number) as number });
    expect(reasons(a.t)).toMatchObject({ 'handshake-refused': expect.any(Number) as number });
    expect(b.got).toEqual([]);
  });

  it('a dialer closes a stream whose answer names another cluster or node, before sending anything', async () => {
    for (const [answer, reason] of [
      [{ from: 'b', hello: { clusterId: 'other', to: 'a' } }, 'handshake-wrong-cluster'],
      [{ from: 'c', hello: { clusterId: CLUSTER, to: 'a' } }, 'handshake-wrong-node'],
      [{ from: 'b', hello: { clusterId: CLUSTER, to: 'z' } }, 'handshake-wrong-node'],
      [{ from: 'b', hello: undefined }, 'handshake-missing'],
    ] as const) {
      const fake = await fakePeer(() => frame(answer.from, [], answer.hello));
      const a = await node('a', { b: fake.port });
      a.t.send(nodeId('b'), [msg(1, 1)]);
      await until(`a to count ${reason}`, () => a.t.invalid.total > 0);
      expect(Object.keys(reasons(a.t))).toEqual([reason]);
      expect(fake.received.length).toBeGreaterThan(0);
      expect(fake.received.every((f) => f.messages.length === 0)).toBe(true); // hellos only
      await a.t.close();
    }
  });
});

function frame(from: string, messages: PeerMessage[], hello?: PeerHello): Buffer {
  return Buffer.from(PeerFrame.encode({ from, messages, hello }).finish());
}

function reasons(t: GrpcTransport<Msg>): Record<string, number> {
  return Object.fromEntries(t.invalid.byReason());
}

const asIs = (b: Buffer) => b;

/** A raw peer stream to `port`, closed after the test. */
function rawStream(port: number): grpc.ClientDuplexStream<Buffer, Buffer> {
  const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  open.push(raw);
  const stream = raw.makeBidiStreamRequest<Buffer, Buffer>(PeerServiceService.exchange.path, asIs, asIs);
  stream.on('error', () => {}); // the status is what the tests look at
  open.push({ close: () => void stream.cancel() });
  return stream;
}

/** The status code the stream ends with. */
function statusOf(stream: grpc.ClientDuplexStream<Buffer, Buffer>): Promise<number> {
  return new Promise((resolve) => stream.on('status', (s: grpc.StatusObject) => resolve(s.code)));
}

/** A gRPC server on the peer path that answers a stream's first frame with `answer()` and records what it receives. */
async function fakePeer(answer: () => Buffer): Promise<{ port: number; received: PeerFrame[] }> {
  const received: PeerFrame[] = [];
  const server = new grpc.Server();
  const exchange = { ...PeerServiceService.exchange, requestDeserialize: asIs, responseSerialize: asIs };
  server.addService(
    { exchange },
    {
      exchange: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (b: Buffer) => {
          const f = PeerFrame.decode(b);
          if (received.push(f) === 1) call.write(answer());
        });
        call.on('error', () => {});
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  open.push({ close: () => server.forceShutdown() });
  return { port, received };
}
