// Many groups per node in simulation (issue 8, item 2): 5 nodes, each one
// GroupMux hosting a replica of every group placed on it, as `shardpax dev
// --nodes 5 --groups 2 --replicas 3` places them: group 0 (the shard master)
// on s0-s2, KV group 1 on s0,s3,s4, KV group 2 on s1-s3; so s0-s3 host two
// groups each. Per seed: loss, duplication and reordering; crashes of whole
// nodes (every group on the node goes down with it; sometimes the disk is
// lost and the node rebuilds), partitions, then heal. Meanwhile KV clients
// read and write each KV group, and an admin client joins, leaves and moves
// through group 0.
//
// Checked continuously: no group ever decides two values for a slot. At the
// end: every client finished; each KV group's history is linearizable; every
// group's replicas applied everything decided in it; the shard master's
// changes made consecutive configs, one per change that succeeded (retries
// applied once), and every replica of group 0 holds the same bytes for every
// config.
import { describe, expect, it } from 'vitest';
import { assert } from '../src/core/assert.js';
import type { Env, ProtocolNode } from '../src/core/env.js';
import { configNum, type GroupId, groupId, millis, type NodeId, nodeId, shardId, type Slot } from '../src/core/ids.js';
import type { StoredState } from '../src/core/storage.js';
import { markCount, resetMarks } from '../src/core/marks.js';
import { Prng } from '../src/core/prng.js';
import { KvGroupServer } from '../src/kv/group-server.js';
import { records } from '../src/paxos/codec.js';
import type { NodeMessage, NodeTimer } from '../src/paxos/group-env.js';
import { GroupMux, groupSpaces } from '../src/paxos/group-mux.js';
import { DEFAULT_GROUP_TUNING, GROUP_PRELOAD, type GroupMessage, GroupServer } from '../src/paxos/group-server.js';
import { nodeWireCodec } from '../src/paxos/group-wire.js';
import type { Batch } from '../src/paxos/messages.js';
import { DEFAULT_PAXOS_TUNING } from '../src/paxos/paxos-server.js';
import { ClientSession, type Outcome } from '../src/rpc/client-session.js';
import { Simulation } from '../src/sim/simulation.js';
import { scheduleNemesis } from '../src/sim/nemesis.js';
import { decodeShardMasterResult, encodeShardConfig, encodeShardMasterCommand } from '../src/shardmaster/codec.js';
import type { ShardMasterCommand } from '../src/shardmaster/messages.js';
import { ShardMasterApplication } from '../src/shardmaster/shard-master-application.js';
import { ShardMasterServer } from '../src/shardmaster/shard-master-server.js';
import { checkLinearizable } from './checkers/linearizability.js';
import { KvClient, type KvClientTimer } from './support/kv-client.js';
import { forEachSeed } from './support/seeds.js';

const SEEDS = Number(process.env.MULTIGROUP_SEEDS ?? 100);
const SHARDS = 16;
const NODES = ['s0', 's1', 's2', 's3', 's4'].map(nodeId);
const [s0, s1, s2, s3, s4] = NODES as [NodeId, NodeId, NodeId, NodeId, NodeId];
const PLACEMENT: ReadonlyMap<GroupId, readonly NodeId[]> = new Map([
  [groupId(0), [s0, s1, s2]],
  [groupId(1), [s0, s3, s4]],
  [groupId(2), [s1, s2, s3]],
]);
const KV_GROUPS = [groupId(1), groupId(2)];

type Message = NodeMessage<GroupMessage>;
type Timer = NodeTimer<KvClientTimer>;

/** One change at a time to the shard master, through an exactly-once session; keeps each outcome. */
class AdminScript implements ProtocolNode<GroupMessage, KvClientTimer> {
  readonly outcomes: Array<{ readonly command: ShardMasterCommand; readonly result: ReturnType<typeof decodeShardMasterResult> }> = [];
  private readonly session: ClientSession;
  private readonly rng: Prng;
  private issued = 0;
  private current: ShardMasterCommand | undefined;

  constructor(
    private readonly env: Env<GroupMessage, KvClientTimer>,
    private readonly o: { readonly changes: number; readonly meanThinkMs: number; readonly seed: number },
  ) {
    this.rng = new Prng(o.seed);
    const servers = PLACEMENT.get(groupId(0)) ?? [];
    this.session = new ClientSession(env, { servers, retryMs: millis(60), window: 1, timerOwner: 0, shard: shardId(0) }, (_t, out) => this.complete(out));
    this.think();
  }

  done(): boolean {
    return this.current === undefined && this.issued >= this.o.changes;
  }

  onMessage(_from: NodeId, m: GroupMessage): void {
    if (m.type === 'ClientResult') this.session.onResult(m.result);
  }

  onTimer(t: KvClientTimer): void {
    if (t.type === 'SessionRetry') this.session.onTimer(t);
    else if (t.type === 'Think') this.next();
  }

  private think(): void {
    if (this.issued < this.o.changes) this.env.setTimer({ type: 'Think' }, millis(this.rng.int(0, 2 * this.o.meanThinkMs)));
  }

  private next(): void {
    this.issued += 1;
    // The first changes join each KV group; then joins, leaves and moves at random, some of them refused.
    const first = KV_GROUPS[this.issued - 1];
    const group = first ?? KV_GROUPS[this.rng.int(0, KV_GROUPS.length - 1)] ?? groupId(1);
    const roll = first === undefined ? this.rng.next() : 0;
    const command: ShardMasterCommand =
      roll < 0.35
        ? { kind: 'join', group, servers: [...(PLACEMENT.get(group) ?? [])] }
        : roll < 0.5
          ? { kind: 'leave', group }
          : { kind: 'move', shard: shardId(this.rng.int(0, SHARDS - 1)), group };
    this.current = command;
    this.session.submit(encodeShardMasterCommand(command));
  }

  private complete(out: Outcome): void {
    const command = this.current;
    assert(command !== undefined && out.ok, 'an outcome for no command, or an expired session');
    this.current = undefined;
    this.outcomes.push({ command, result: decodeShardMasterResult(out.result) });
    this.think();
  }
}

/** A client node: a GroupMux with one role, so its messages carry that group. */
function clientNode(group: GroupId, role: (env: Env<GroupMessage, KvClientTimer>) => ProtocolNode<GroupMessage, KvClientTimer>) {
  return (env: Env<Message, Timer>) => new GroupMux<GroupMessage, KvClientTimer>(env, [{ id: group, factory: (e) => role(e) }], new Map());
}

function run(seed: number, app: ShardMasterApplication, o: { readonly ops: number; readonly faultMs: number }) {
  const rng = new Prng(seed ^ 0x6a0b);
  const faults = { lossRate: rng.next() * 0.15, duplicateRate: rng.next() * 0.1, minDelayMs: 1, maxDelayMs: 2 + rng.int(0, 25) };
  const sim = new Simulation<Message, Timer>({
    seed,
    faults,
    clone: (m) => nodeWireCodec.fromWire(nodeWireCodec.toWire(m)),
    describe: (m) => `g${m.group} ${m.message.type}`,
  });
  const decided = new Map<GroupId, Map<number, string>>([...PLACEMENT.keys()].map((g) => [g, new Map()]));
  const observer = (g: GroupId) => ({
    learned(server: NodeId, s: Slot, batch: Batch) {
      const value = Buffer.from(records.encodeDecided({ slot: s, batch })).toString('base64');
      const seen = decided.get(g)?.get(s);
      assert(seen === undefined || seen === value, `group ${g}: slot ${s} decided to two values (seen at ${server})`);
      decided.get(g)?.set(s, value);
    },
  });
  const rebuilt = new Set<NodeId>();
  for (const id of NODES) {
    const hosted = [...PLACEMENT].filter(([, nodes]) => nodes.includes(id));
    const groups = hosted.map(([g, members]) => ({
      id: g,
      factory: (env: Env<GroupMessage, KvClientTimer>, stored: StoredState) => {
        const config = {
          ...DEFAULT_PAXOS_TUNING,
          ...DEFAULT_GROUP_TUNING,
          self: id,
          members,
          logRetainSlots: 20,
          maxChunkBytes: 128,
          rebuild: rebuilt.has(id),
          transferRetryTicks: 10,
        };
        return g === 0 ? new ShardMasterServer(env, config, app, stored, observer(g)) : new KvGroupServer(env, config, stored, observer(g));
      },
    }));
    const preload = groupSpaces(
      hosted.map(([g]) => g),
      GROUP_PRELOAD,
    );
    sim.addNode(id, (env, stored) => new GroupMux<GroupMessage, KvClientTimer>(env, groups, stored), preload);
  }
  const kvClients = KV_GROUPS.flatMap((g) =>
    [0, 1].map((i) => {
      const id = nodeId(`c${g}.${i}`);
      const servers = PLACEMENT.get(g) ?? [];
      const keys = ['x', 'y'];
      sim.addNode(
        id,
        clientNode(g, (env) => new KvClient(env, id, { servers, ops: o.ops, meanThinkMs: Math.ceil(o.faultMs / o.ops), keys, seed: seed * 31 + g * 7 + i, now: () => sim.now })),
      );
      return { id, group: g };
    }),
  );
  const adminId = nodeId('admin');
  sim.addNode(adminId, clientNode(groupId(0), (env) => new AdminScript(env, { changes: 12, meanThinkMs: Math.ceil(o.faultMs / 12), seed: seed * 17 })));

  const mux = (id: NodeId) => sim.role(id, GroupMux<GroupMessage, KvClientTimer>);
  const server = (id: NodeId, g: GroupId): GroupServer => {
    const r = mux(id).role(g);
    assert(r instanceof GroupServer, `${id} hosts no server of group ${g}`);
    return r;
  };
  const kv = (c: { readonly id: NodeId; readonly group: GroupId }) => {
    const r = mux(c.id).role(c.group);
    assert(r instanceof KvClient);
    return r;
  };
  const admin = () => {
    const r = mux(adminId).role(groupId(0));
    assert(r instanceof AdminScript);
    return r;
  };
  // At most one node down or rebuilding at a time: each group has three replicas, and a node's crash takes
  // down its replica of every group it hosts.
  const isRebuilding = (id: NodeId) => [...PLACEMENT].some(([g, nodes]) => nodes.includes(id) && server(id, g).paxos.acceptor.rebuilding);
  scheduleNemesis(sim, rng, {
    nodes: NODES,
    faultMs: o.faultMs,
    gapMs: [200, 1500],
    downMs: [100, 3000],
    maxOut: 1,
    alsoOut: () => NODES.filter((n) => sim.isUp(n) && rebuilt.has(n) && isRebuilding(n)),
    wipeChance: 0.2,
    onWipe: (id) => rebuilt.add(id),
    splitSize: 2,
  });

  const finished = sim.runUntil(() => kvClients.every((c) => kv(c).done()) && admin().done(), o.faultMs + 120_000);
  const applied = () => [...PLACEMENT].map(([g, nodes]) => ({ g, applied: nodes.map((n) => server(n, g).paxos.replica.firstUnapplied()) }));
  const converged = sim.runUntil(() => applied().every(({ g, applied: a }) => a.every((x) => x === decided.get(g)?.size)), 30_000);
  const histories = KV_GROUPS.map((g) => kvClients.filter((c) => c.group === g).flatMap((c) => kv(c).history));
  const shardMasters = (PLACEMENT.get(groupId(0)) ?? []).map((n) => {
    const r = server(n, groupId(0));
    assert(r instanceof ShardMasterServer);
    return r;
  });
  return { sim, finished, converged, applied: applied(), histories, outcomes: admin().outcomes, shardMasters };
}


describe('many groups per node in simulation', () => {
  it(`${SEEDS} seeds: 5 nodes, the shard master and two KV groups overlapping, node crashes, loss, partitions`, async () => {
    const app = await ShardMasterApplication.load(SHARDS);
    resetMarks();
    forEachSeed(SEEDS, (seed) => {
      const r = run(seed, app, { ops: 20, faultMs: 8_000 });
      const lin = r.histories.map((h) => checkLinearizable(h));
      const report = () => `last events of seed ${seed}:\n${r.sim.recentEvents()}`;
      if (!r.finished || !r.converged || lin.some((l) => !l.ok)) console.error(report());
      expect(r.finished, 'every client finished after the faults healed').toBe(true);
      expect(r.converged, `applied per group: ${JSON.stringify(r.applied)}`).toBe(true);
      for (const l of lin) expect(l.ok, l.reason).toBe(true);

      // The shard master: one config per change that succeeded, numbered in order, whatever the retries.
      const made = r.outcomes.flatMap((x) => (x.result.kind === 'done' ? [x.result.num] : []));
      expect(made).toEqual(made.map((_, i) => i + 1));
      expect(made.length, 'the first joins succeed').toBeGreaterThanOrEqual(KV_GROUPS.length);
      const [first, ...others] = r.shardMasters;
      assert(first !== undefined);
      const latest = first.storedConfig().num;
      expect(latest).toBe(made.length);
      for (let num = 0; num <= latest; num++) {
        const bytes = Buffer.from(encodeShardConfig(first.storedConfig(configNum(num)))).toString('base64');
        for (const o of others) expect(Buffer.from(encodeShardConfig(o.storedConfig(configNum(num)))).toString('base64'), `config ${num}`).toBe(bytes);
      }
    });
    if (process.env.SEED === undefined) {
      for (const path of ['replica compacts its log', 'state receiver starts a transfer', 'replica installs a transferred state', 'acceptor starts rebuilding', 'rebuilt acceptor votes again', 'active leader preempted']) {
        expect(markCount(path), `path never taken: ${path}`).toBeGreaterThan(0);
      }
    }
    expect(markCount('invalid input dropped'), 'honest messages dropped as invalid').toBe(0);
  }, 300_000);

  it('the same seed gives the same run', async () => {
    const app = await ShardMasterApplication.load(SHARDS);
    const a = run(7, app, { ops: 8, faultMs: 2_000 });
    const b = run(7, app, { ops: 8, faultMs: 2_000 });
    expect(a.sim.traceHash()).toBe(b.sim.traceHash());
  });
});
