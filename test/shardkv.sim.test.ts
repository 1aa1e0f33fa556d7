// Sharded KV groups in simulation (issue 8, item 3): 5 nodes; the shard
// master's group 0 on s0-s2 and three KV groups of three replicas overlapping
// on the nodes. An admin joins the KV groups, then joins, leaves and moves at
// random through group 0, while clients run get/put/delete on random keys
// through the SDK's router (src/client/shard-router.ts). Per seed: loss,
// duplication, reordering, partitions, and crashes of whole nodes (each takes
// down every group it hosts, group-0 members included), then heal.
//
// Checked continuously: at no config does more than one group serve a shard
// (over every replica, after every event). At the end: every client finished;
// the whole history is linearizable per key across reconfigurations; every
// group reached the shard master's latest config; every shard is served by
// its owner and by no one else, and no group holds data of a shard it no
// longer owns (handed-off shards were deleted at the source).
import { describe, expect, it } from 'vitest';
import { assert } from '../src/core/assert.js';
import type { Env, ProtocolNode } from '../src/core/env.js';
import { type GroupId, groupId, millis, type NodeId, nodeId, shardId } from '../src/core/ids.js';
import { markCount, resetMarks } from '../src/core/marks.js';
import { Prng } from '../src/core/prng.js';
import type { StoredState } from '../src/core/storage.js';
import { DEFAULT_SHARDING_TUNING, KvGroupServer } from '../src/kv/group-server.js';
import { decodeGroupPeer } from '../src/kv/migration-codec.js';
import type { NodeMessage, NodeTimer } from '../src/paxos/group-env.js';
import { GroupMux, groupSpaces } from '../src/paxos/group-mux.js';
import { DEFAULT_GROUP_TUNING, GROUP_PRELOAD, type GroupMessage, GroupServer } from '../src/paxos/group-server.js';
import { nodeWireCodec } from '../src/paxos/group-wire.js';
import { DEFAULT_PAXOS_TUNING } from '../src/paxos/paxos-server.js';
import { ClientSession, type Outcome } from '../src/rpc/client-session.js';
import type { RpcTimer } from '../src/rpc/messages.js';
import { Simulation } from '../src/sim/simulation.js';
import { scheduleNemesis } from '../src/sim/nemesis.js';
import { decodeShardMasterResult, encodeShardMasterCommand } from '../src/shardmaster/codec.js';
import { type KeySharder, loadKeySharder } from '../src/shardmaster/key-shard.js';
import type { ShardMasterCommand } from '../src/shardmaster/messages.js';
import { ShardMasterApplication } from '../src/shardmaster/shard-master-application.js';
import { ShardMasterServer } from '../src/shardmaster/shard-master-server.js';
import { checkLinearizable } from './checkers/linearizability.js';
import { forEachSeed } from './support/seeds.js';
import { type ShardedClientTimer, ShardedKvClient } from './support/sharded-kv-client.js';

const SEEDS = Number(process.env.SHARDKV_SEEDS ?? 30);
const SHARDS = 8;
const NODES = ['s0', 's1', 's2', 's3', 's4'].map(nodeId);
const [s0, s1, s2, s3, s4] = NODES as [NodeId, NodeId, NodeId, NodeId, NodeId];
const SM = groupId(0);
const PLACEMENT: ReadonlyMap<GroupId, readonly NodeId[]> = new Map([
  [SM, [s0, s1, s2]],
  [groupId(1), [s0, s3, s4]],
  [groupId(2), [s1, s2, s3]],
  [groupId(3), [s2, s3, s4]],
]);
const KV_GROUPS = [groupId(1), groupId(2), groupId(3)];
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];

type Message = NodeMessage<GroupMessage>;
type Timer = NodeTimer<ShardedClientTimer>;

/** One change at a time to the shard master through an exactly-once session. */
class Admin implements ProtocolNode<Message, Timer> {
  readonly outcomes: Array<{ readonly command: ShardMasterCommand; readonly ok: boolean }> = [];
  private readonly session: ClientSession;
  private readonly rng: Prng;
  private issued = 0;
  private current: ShardMasterCommand | undefined;
  /** Groups joined as far as the answers tell: the last one never leaves (its shards would have no one to go to). */
  private readonly joined = new Set<GroupId>();

  constructor(
    private readonly env: Env<Message, Timer>,
    private readonly o: { readonly changes: number; readonly meanThinkMs: number; readonly seed: number; readonly script?: readonly ShardMasterCommand[] },
  ) {
    this.rng = new Prng(o.seed);
    this.session = new ClientSession(
      wrap(env),
      { servers: PLACEMENT.get(SM) ?? [], retryMs: millis(60), window: 1, timerOwner: 0, shard: shardId(0) },
      (_t, out) => this.complete(out),
    );
    this.think();
  }

  done(): boolean {
    return this.current === undefined && this.issued >= this.o.changes;
  }

  onMessage(_from: NodeId, m: Message): void {
    if (m.message.type === 'ClientResult') this.session.onResult(m.message.result);
  }

  onTimer(t: Timer): void {
    if (t.timer.type === 'SessionRetry') this.session.onTimer(t.timer);
    else this.next();
  }

  private think(): void {
    if (this.issued < this.o.changes) this.env.setTimer({ group: SM, timer: { type: 'Think' } }, millis(this.rng.int(0, 2 * this.o.meanThinkMs)));
  }

  private next(): void {
    this.issued += 1;
    const first = KV_GROUPS[this.issued - 1];
    const group = first ?? KV_GROUPS[this.rng.int(0, KV_GROUPS.length - 1)] ?? groupId(1);
    const roll = first === undefined ? this.rng.next() : 0;
    const scripted = this.o.script?.[this.issued - 1];
    const command: ShardMasterCommand =
      scripted !== undefined
        ? scripted
        : roll < 0.3
        ? { kind: 'join', group, servers: [...(PLACEMENT.get(group) ?? [])] }
        : roll < 0.45 && (this.joined.size > 1 || !this.joined.has(group))
          ? { kind: 'leave', group }
          : { kind: 'move', shard: shardId(this.rng.int(0, SHARDS - 1)), group };
    this.current = command;
    this.session.submit(encodeShardMasterCommand(command));
  }

  private complete(out: Outcome): void {
    const command = this.current;
    assert(command !== undefined && out.ok, 'an outcome for no command, or an expired session');
    this.current = undefined;
    const ok = decodeShardMasterResult(out.result).kind === 'done';
    if (ok && command.kind === 'join') this.joined.add(command.group);
    if (ok && command.kind === 'leave') this.joined.delete(command.group);
    this.outcomes.push({ command, ok });
    this.think();
  }
}

/** A group-0 env over a node env (the admin talks to group 0 only). */
function wrap(env: Env<Message, Timer>): Env<GroupMessage, RpcTimer> {
  return {
    self: env.self,
    send: (to, message) => env.send(to, { group: SM, message }),
    sendNow: (to, message) => env.sendNow(to, { group: SM, message }),
    setTimer: (timer, afterMs) => env.setTimer({ group: SM, timer }, afterMs),
    persist: (...w) => env.persist(...w),
    persistUnsynced: (...w) => env.persistUnsynced(...w),
    syncBeforeSending: () => env.syncBeforeSending(),
    read: (space, key) => env.read(space, key),
    openSnapshot: () => env.openSnapshot(),
    releaseSnapshot: (id) => env.releaseSnapshot(id),
    scan: (r) => env.scan(r),
    now: () => env.now(),
    random: () => env.random(),
  };
}

interface RunOptions {
  readonly ops: number;
  readonly faultMs: number;
  readonly changes: number;
  /** The admin's commands, in order, instead of random ones. */
  readonly script?: readonly ShardMasterCommand[];
  /** Drops every pull answer for `shard` while it says so (at virtual time `nowMs`): a migration held stalled. */
  readonly stalled?: (shard: number, nowMs: number) => boolean;
  /** The admin's mean pause between changes (default: its changes spread over the fault window). */
  readonly adminThinkMs?: number;
  readonly nemesis?: boolean;
  /** Keys of each of the four clients (default: every key). */
  readonly clientKeys?: readonly (readonly string[])[];
}

function run(seed: number, app: ShardMasterApplication, sharder: KeySharder, o: RunOptions) {
  const rng = new Prng(seed ^ 0x5a4d);
  const faults = { lossRate: rng.next() * 0.1, duplicateRate: rng.next() * 0.1, minDelayMs: 1, maxDelayMs: 2 + rng.int(0, 20) };
  const sim = new Simulation<Message, Timer>({
    seed,
    faults,
    clone: (m) => nodeWireCodec.fromWire(nodeWireCodec.toWire(m)),
    describe: (m) => `g${m.group} ${m.message.type}`,
  });
  const clusterNodes = new Set(NODES);
  for (const id of NODES) {
    const hosted = [...PLACEMENT].filter(([, nodes]) => nodes.includes(id));
    const groups = hosted.map(([g, members]) => ({
      id: g,
      factory: (env: Env<GroupMessage, ShardedClientTimer>, stored: StoredState) => {
        const config = { ...DEFAULT_PAXOS_TUNING, ...DEFAULT_GROUP_TUNING, self: id, members, logRetainSlots: 50, maxChunkBytes: 64 };
        if (g === SM) return new ShardMasterServer(env, config, app, stored, {}, clusterNodes);
        const stalled = o.stalled;
        if (stalled !== undefined) {
          const send = env.sendToGroup?.bind(env);
          env = Object.assign(Object.create(env) as typeof env, {
            sendToGroup: (group: GroupId, to: NodeId, m: GroupMessage) => {
              if (m.type === 'HostMessage') {
                const body = decodeGroupPeer(m.body, { shards: SHARDS }).body;
                if (body.kind === 'pullReply' && stalled(body.shard, env.now())) return;
              }
              send?.(group, to, m);
            },
          });
        }
        const sharding = { ...DEFAULT_SHARDING_TUNING, group: g, shards: SHARDS, shardMaster: PLACEMENT.get(SM) ?? [], clusterNodes, shardOf: (key: string) => sharder.shardOf(key) };
        return new KvGroupServer(env, config, stored, {}, sharding);
      },
    }));
    sim.addNode(id, (env, stored) => new GroupMux<GroupMessage, ShardedClientTimer>(env, groups, stored), groupSpaces(hosted.map(([g]) => g), GROUP_PRELOAD));
  }
  const clientIds = [0, 1, 2, 3].map((i) => nodeId(`c${i}`));
  for (const [i, id] of clientIds.entries()) {
    sim.addNode(
      id,
      (env) =>
        new ShardedKvClient(env, id, {
          shardMaster: PLACEMENT.get(SM) ?? [],
          sharder,
          ops: o.ops,
          meanThinkMs: Math.ceil(o.faultMs / o.ops),
          keys: o.clientKeys?.[i] ?? KEYS,
          seed: seed * 31 + i,
          now: () => sim.now,
        }),
    );
  }
  const adminId = nodeId('admin');
  const adminOptions = { changes: o.changes, meanThinkMs: o.adminThinkMs ?? Math.ceil(o.faultMs / o.changes), seed: seed * 17 };
  sim.addNode(adminId, (env) => new Admin(env, o.script === undefined ? adminOptions : { ...adminOptions, script: o.script }));

  const mux = (id: NodeId) => sim.role(id, GroupMux<GroupMessage, ShardedClientTimer>);
  const server = (id: NodeId, g: GroupId): GroupServer => {
    const r = mux(id).role(g);
    assert(r instanceof GroupServer, `${id} hosts no server of group ${g}`);
    return r;
  };
  const kvReplicas = () =>
    KV_GROUPS.flatMap((g) =>
      (PLACEMENT.get(g) ?? []).flatMap((n) => {
        if (!sim.isUp(n)) return [];
        const r = server(n, g);
        assert(r instanceof KvGroupServer);
        const table = r.shardTable();
        assert(table !== undefined);
        return [{ g, n, r, table }];
      }),
    );
  // At no config does more than one group serve a shard: (config, shard) -> the group seen serving it.
  const servedAt = new Map<string, GroupId>();
  let violation: string | undefined;
  const checkOneOwner = () => {
    for (const { g, n, table } of kvReplicas()) {
      const num = table.installed().num;
      for (let s = 0; s < SHARDS; s++) {
        if (table.refusal(shardId(s)) !== undefined) continue;
        const key = `${num}/${s}`;
        const seen = servedAt.get(key);
        if (seen === undefined) servedAt.set(key, g);
        else if (seen !== g && violation === undefined) violation = `config ${num}: shard ${s} served by groups ${seen} and ${g} (at ${n})`;
      }
    }
    return violation !== undefined;
  };
  // At most one node down at a time.
  if (o.nemesis ?? true) scheduleNemesis(sim, rng, { nodes: NODES, faultMs: o.faultMs, gapMs: [300, 1500], downMs: [100, 2000], maxOut: 1 });
  const clients = () => clientIds.map((id) => sim.role(id, ShardedKvClient));
  const admin = () => sim.role(adminId, Admin);
  const finished = sim.runUntil(() => checkOneOwner() || (clients().every((c) => c.done()) && admin().done()), o.faultMs + 120_000);
  const latest = () => (server(s0, SM) as ShardMasterServer).storedConfig();
  // Settled: every replica installed the latest config, received every shard it owns, and deleted what it handed off.
  const settled = () =>
    !checkOneOwner() &&
    kvReplicas().every(({ table }) => {
      if (table.installed().num !== latest().num) return false;
      for (let s = 0; s < SHARDS; s++) {
        const r = table.record(shardId(s));
        if (r.state?.kind === 'receiving' || r.state?.kind === 'handingOff' || r.notice !== undefined) return false;
      }
      return true;
    });
  const converged = sim.runUntil(settled, 60_000);
  const history = clients().flatMap((c) => c.history);
  const describeState = () =>
    [
      `latest config ${latest().num}: ${latest().shards.join(',')}`,
      `admin done ${admin().done()}: ${JSON.stringify(admin().outcomes)}`,
      `clients done: ${clients().map((c) => c.done()).join(',')}`,
      ...kvReplicas().map(({ g, n, table }) => {
        const recs = Array.from({ length: SHARDS }, (_, s) => {
          const rec = table.record(shardId(s));
          return `${s}:${rec.state?.kind ?? '-'}${rec.notice === undefined ? '' : '+n'}`;
        });
        return `g${g}@${n} cfg ${table.installed().num} leads ${table.self === g && (server(n, g).paxos.leader.leads() ? 'L' : '')} ${recs.join(' ')}`;
      }),
    ].join('\n');
  return { sim, finished, converged, violation, history, latest: latest(), kvReplicas, admin: admin(), describeState };
}


describe('sharded KV groups in simulation', () => {
  it(`${SEEDS} seeds: shards move between three KV groups under load, crashes, loss and partitions`, async () => {
    const app = await ShardMasterApplication.load(SHARDS);
    const sharder = await loadKeySharder(SHARDS);
    resetMarks();
    forEachSeed(SEEDS, (seed) => {
      const r = run(seed, app, sharder, { ops: 25, faultMs: 8_000, changes: 10 });
      const lin = checkLinearizable(r.history);
      if (!r.finished || !r.converged || !lin.ok || r.violation !== undefined) console.error(`state of seed ${seed}:\n${r.describeState()}`);
      expect(r.violation, 'one group per shard per config').toBeUndefined();
      expect(r.finished, 'every client finished after the faults healed').toBe(true);
      expect(r.converged, 'every group installed the latest config, received its shards and deleted what it handed off').toBe(true);
      expect(lin.ok, lin.reason).toBe(true);
      for (const { g, n, table } of r.kvReplicas()) {
        for (let s = 0; s < SHARDS; s++) {
          const owned = r.latest.shards[s] === g;
          expect(table.refusal(shardId(s)) === undefined, `${n} g${g} shard ${s}`).toBe(owned);
          // Deleted: the range was cleared when the record went (shard-table.ts), after the receiver's notice.
          if (!owned) expect(table.record(shardId(s)).state, `${n} g${g} still holds shard ${s}`).toBeUndefined();
        }
      }
    });
    if (process.env.SEED === undefined) {
      for (const path of [
        'kv group installs a config',
        'kv group hands off a shard',
        'kv group answers a pull from a frozen shard',
        'kv group serves a shard it received',
        'source deletes a handed-off shard after the receiver has it',
        'group server refuses a shard it does not serve at admission',
        'group server refuses a shard it does not serve when applying',
      ]) {
        expect(markCount(path), `path never taken: ${path}`).toBeGreaterThan(0);
      }
    }
    expect(markCount('invalid input dropped'), 'honest messages dropped as invalid').toBe(0);
  }, 600_000);

  it('shards not moving keep serving while a migration is held stalled for a long time', async () => {
    const app = await ShardMasterApplication.load(SHARDS);
    const sharder = await loadKeySharder(SHARDS);
    const moving = sharder.shardOf('a');
    const STALL_END_MS = 20_000;
    const join = (g: GroupId): ShardMasterCommand => ({ kind: 'join', group: g, servers: [...(PLACEMENT.get(g) ?? [])] });
    // Two moves of 'a''s shard: whichever group owns it after the joins, at least one of them moves it.
    const script = [...KV_GROUPS.map(join), ...[2, 3].map((g): ShardMasterCommand => ({ kind: 'move', shard: moving, group: groupId(g) }))];
    resetMarks();
    const r = run(3, app, sharder, {
      ops: 60,
      faultMs: 24_000,
      changes: script.length,
      script,
      adminThinkMs: 200,
      nemesis: false,
      // Each client waits for one op at a time: three stay off the moving shard, one stays on it.
      clientKeys: [0, 1, 2].map(() => KEYS.filter((k) => sharder.shardOf(k) !== moving)).concat([KEYS.filter((k) => sharder.shardOf(k) === moving)]),
      stalled: (shard, nowMs) => shard === moving && nowMs < STALL_END_MS,
    });
    expect(r.finished && r.converged, 'everything finished once the stall ended').toBe(true);
    expect(checkLinearizable(r.history).ok).toBe(true);
    expect(markCount('kv group serves a shard it received')).toBeGreaterThan(0);
    // Ops called well inside the stall: those of other shards all returned within it; one of the moving shard's waited it out.
    const during = r.history.filter((e) => e.call >= 8_000 && e.call <= STALL_END_MS - 3_000);
    const others = during.filter((e) => sharder.shardOf(e.op.key) !== moving);
    const stuck = r.history.filter((e) => sharder.shardOf(e.op.key) === moving && e.call < STALL_END_MS - 3_000);
    expect(others.length).toBeGreaterThan(20);
    for (const e of others) expect(e.ret?.time ?? Infinity, `${e.client} ${e.op.kind} ${e.op.key} at ${e.call}`).toBeLessThan(STALL_END_MS);
    expect(stuck.some((e) => (e.ret?.time ?? 0) >= STALL_END_MS), 'the moving shard was really stalled').toBe(true);
  }, 120_000);
});
