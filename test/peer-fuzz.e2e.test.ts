// Fuzzing a live node's peer port (issue 7, item 3): 100,000 random and
// mutated frames (SHARDPAX_FUZZ_FRAMES for more) against n3 of a real 3-node
// cluster, seeded (SEED=<n> replays a run). First a stream per mutated hello,
// each of which must be refused; then one stream as member n1, which is
// down, so the fuzzer takes over no live link; n2 and n3 keep a majority.
// The node must neither crash nor change state: its promise, applied slot,
// accepted values and data stay as they were, and it serves puts after.
//
// Frames a real n1 could have sent to change n3's state (a higher ballot, a
// new decision: without authentication nobody can tell those from n1's) are
// left out by the fuzzer's own reading of the bounds (test/support/peer-fuzzer.ts).
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster, sleep } from '../src/cli/local-cluster.js';
import type { ReplicaStatus } from '../src/client/admin.js';
import { connect, type Db } from '../src/client/db.js';
import { PeerFrame } from '../src/gen/shardpax/v1/peer.js';
import { loadClusterConfig } from '../src/runtime/cluster-config.js';
import { classify, type Mutation, PeerFuzzer, validHello } from './support/peer-fuzzer.js';
import { RawPeer } from './support/raw-peer.js';

const FRAMES = Number(process.env.SHARDPAX_FUZZ_FRAMES ?? 100_000);
/** Of them, first frames of streams of their own (each stream costs a round trip). */
const HELLO_STREAMS = Math.max(200, Math.floor(FRAMES / 100));
const SEED = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
const KEYS = 20;

let cluster: LocalCluster | undefined;
let db: Db | undefined;
const tuning = process.env.SHARDPAX_TUNING;
afterAll(async () => {
  await db?.close();
  await cluster?.stop();
  if (tuning === undefined) delete process.env.SHARDPAX_TUNING;
  else process.env.SHARDPAX_TUNING = tuning;
});

async function until<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const FRAME_REASONS = ['frame-undecodable', 'frame-wrong-sender', 'frame-repeated-hello'] as const;
const reason = (s: ReplicaStatus, r: string): number => s.invalidMessages[r] ?? 0;
const handshakeRefusals = (s: ReplicaStatus): number =>
  Object.entries(s.invalidMessages)
    .filter(([r]) => r.startsWith('handshake-'))
    .reduce((a, [, n]) => a + n, 0);
/** What no invalid frame may change. */
const stateOf = (s: ReplicaStatus) => ({
  promisedRound: s.promisedRound,
  promisedLeader: s.promisedLeader,
  appliedBelow: s.appliedBelow,
  acceptedEntries: s.acceptedEntries,
  pid: s.pid,
});

describe('a live node under fuzzed peer frames', () => {
  it(`takes ${FRAMES} random and mutated frames without crashing or changing state (SEED=${SEED})`, async () => {
    // Elections only after 2-4 s of silence: a busy machine must not change the ballot under the test's feet.
    process.env.SHARDPAX_TUNING = JSON.stringify({ electionTicks: 100 });
    const { cluster: c } = await LocalCluster.create({ replicas: 3 });
    cluster = c;
    const clusterId = loadClusterConfig(c.file).clusterId;
    const n3 = c.nodes.find((n) => n.id === 'n3')?.address ?? '';
    c.start('n2');
    c.start('n3');
    await c.awaitLeader(30_000);
    await c.joinKvGroups(30_000); // awaitReady would wait for n1, which this test plays itself
    db = await connect({ cluster: c.file, timeoutMs: 20_000 });
    for (let i = 0; i < KEYS; i++) await db.put(`k${i}`, `v${i}`);
    const before = await until('n3 to apply every put', async () => {
      const [s2, s3] = [await c.status('n2'), await c.status('n3')];
      return s2 !== undefined && s3 !== undefined && s3.appliedBelow === s2.appliedBelow && s3.appliedBelow > 0 ? s3 : undefined;
    });
    const fuzzer = new PeerFuzzer(SEED, 'n1', {
      promisedRound: before.promisedRound,
      applied: before.appliedBelow,
      members: ['n1', 'n2', 'n3'],
    });
    const started = performance.now();

    // Streams that open with a mutated hello: every one is refused, and counted once.
    let helloStreams = 0;
    let skippedHellos = 0;
    const refusals: Array<Promise<number>> = [];
    const connection = new grpc.Client(n3, grpc.credentials.createInsecure());
    for (let i = 0; i < HELLO_STREAMS; i++) {
      const hello = fuzzer.hello(clusterId, 'n3');
      if (validHello(hello, clusterId, 'n3', ['n1', 'n2'])) {
        skippedHellos++;
        continue;
      }
      const peer = new RawPeer(connection, false);
      await peer.write(hello);
      await peer.write(fuzzer.frame().bytes);
      helloStreams++;
      refusals.push(peer.status.finally(() => peer.close()));
      if (refusals.length >= 32) expect(await Promise.all(refusals.splice(0))).toEqual(Array(32).fill(grpc.status.PERMISSION_DENIED));
    }
    for (const code of await Promise.all(refusals)) expect(code).toBe(grpc.status.PERMISSION_DENIED);
    connection.close();

    // One stream as n1: the rest of the frames.
    const spoof = RawPeer.open(n3);
    await spoof.write(Buffer.from(PeerFrame.encode({ from: 'n1', messages: [], hello: { clusterId, to: 'n3' } }).finish()));
    await spoof.handshake();
    const sent = new Map<Mutation, number>();
    let frames = helloStreams * 2;
    let skipped = 0;
    /** Frames the node must drop whole. */
    const wholeDrops: Record<(typeof FRAME_REASONS)[number], number> = {
      'frame-undecodable': 0,
      'frame-wrong-sender': 0,
      'frame-repeated-hello': 0,
    };
    while (frames < FRAMES) {
      const { bytes, mutation } = fuzzer.frame();
      const kind = classify(bytes, 'n1', ['n1', 'n2', 'n3'], c.groups.map((g) => g.id));
      if (kind === 'may-change-state') {
        skipped++;
        continue;
      }
      if (kind !== 'messages') wholeDrops[kind]++;
      await spoof.write(bytes);
      sent.set(mutation, (sent.get(mutation) ?? 0) + 1);
      frames++;
    }
    // The node decodes frames with the same generated code: it must count exactly these (and so has taken them all in).
    const after = await until('n3 to take in every frame', async () => {
      const s = await c.status('n3');
      return s !== undefined && FRAME_REASONS.every((r) => reason(s, r) - reason(before, r) === wholeDrops[r]) ? s : undefined;
    });
    const seconds = (performance.now() - started) / 1000;
    spoof.close();
    const dropped = Object.values(after.invalidMessages).reduce((a, b) => a + b, 0);
    console.log(
      `peer fuzz (SEED=${SEED}): ${frames} frames in ${seconds.toFixed(1)} s (${helloStreams} hello streams, ` +
        `${skippedHellos} valid hellos and ${skipped} frames that could change state not sent); ` +
        `n3 dropped ${dropped} inputs: ${JSON.stringify(after.invalidMessages)}; by mutation: ${JSON.stringify(Object.fromEntries(sent))}`,
    );

    expect(c.crashed).toBeUndefined();
    expect(stateOf(after), 'n3 changed state').toEqual(stateOf(before));
    expect(handshakeRefusals(after) - handshakeRefusals(before), 'one refusal per hello stream').toBe(helloStreams);
    expect(dropped, 'most frames were dropped as invalid').toBeGreaterThan(frames / 2);

    // Data intact, and n3 still a working replica.
    for (let i = 0; i < KEYS; i++) expect(new TextDecoder().decode(await db.get(`k${i}`))).toBe(`v${i}`);
    await db.put('after-fuzz', 'ok');
    const target = Math.max(...[...(await c.statuses(1_000)).values()].map((s) => s.appliedBelow));
    await until('n3 to apply the put after the fuzz', async () => (((await c.status('n3'))?.appliedBelow ?? 0) >= target ? true : undefined));
    expect((await c.status('n3'))?.pid).toBe(before.pid);
  }, 120_000);
});
