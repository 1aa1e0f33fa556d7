// A small scenario DSL over the simulator (STYLE.md 8; dslabs' named lab
// tests, etcd's scripted transcripts): a KV group of simulated servers and
// one scripted client, with steps that read like the paper —
// `partition`, `crash`, `restart`, `put`, `runUntil`, `expectLeader`.
import { assert } from '../../src/core/assert.js';
import type { Env, ProtocolNode } from '../../src/core/env.js';
import { millis, type NodeId, nodeId, shardId } from '../../src/core/ids.js';
import { decodeKvResult, encodeKvCommand } from '../../src/kv/codec.js';
import { KvGroupServer } from '../../src/kv/group-server.js';
import { DEFAULT_GROUP_TUNING, GROUP_PRELOAD, type GroupMessage, type GroupTimer } from '../../src/paxos/group-server.js';
import { groupWireCodec } from '../../src/paxos/group-wire.js';
import type { PaxosServerConfig } from '../../src/paxos/paxos-server.js';
import { DEFAULT_PAXOS_TUNING } from '../../src/paxos/paxos-server.js';
import { ClientSession } from '../../src/rpc/client-session.js';
import { RELIABLE, Simulation } from '../../src/sim/simulation.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A client that runs the operations it is handed, one at a time, and keeps their answers. */
export class ScriptClient implements ProtocolNode<GroupMessage, GroupTimer> {
  private readonly session: ClientSession;
  /** Ticket -> answer (a get's value, '' for an absent key, 'done' for a write). */
  readonly answers = new Map<number, string>();

  constructor(env: Env<GroupMessage, GroupTimer>, servers: readonly NodeId[]) {
    this.session = new ClientSession(env, { servers, retryMs: millis(50), window: 8, timerOwner: 0, shard: shardId(0) }, (ticket, o) => {
      if (!o.ok) return;
      const r = decodeKvResult(o.result);
      this.answers.set(ticket, r.kind === 'value' ? (r.value === undefined ? '' : dec.decode(r.value)) : r.kind);
    });
  }

  put(key: string, value: string): number {
    return this.session.submit(encodeKvCommand({ kind: 'put', key, value: enc.encode(value) }));
  }

  get(key: string): number {
    return this.session.read(encodeKvCommand({ kind: 'get', key }));
  }

  onMessage(_from: NodeId, m: GroupMessage): void {
    if (m.type === 'ClientResult') this.session.onResult(m.result);
  }

  onTimer(t: GroupTimer): void {
    if (t.type === 'SessionRetry') this.session.onTimer(t);
  }
}

export class Scenario {
  readonly sim: Simulation<GroupMessage, GroupTimer>;
  readonly servers: readonly NodeId[];
  readonly client = nodeId('client');
  /** Nodes that lost their disk and restarted as `shardpax server --rebuild` does. */
  private readonly rebuilt = new Set<NodeId>();

  constructor(seed: number, replicas = 3, tuning: Partial<PaxosServerConfig> = {}) {
    this.sim = new Simulation<GroupMessage, GroupTimer>({
      seed,
      faults: RELIABLE,
      clone: (m) => groupWireCodec.fromWire(groupWireCodec.toWire(m)),
      describe: (m) => m.type,
    });
    this.servers = Array.from({ length: replicas }, (_, i) => nodeId(`s${i}`));
    const config = (self: NodeId) => ({
      ...DEFAULT_PAXOS_TUNING,
      ...DEFAULT_GROUP_TUNING,
      logRetainSlots: 20,
      maxChunkBytes: 256,
      ...tuning,
      self,
      members: this.servers,
      rebuild: this.rebuilt.has(self),
    });
    for (const id of this.servers) {
      this.sim.addNode(id, (env, stored) => new KvGroupServer(env, config(id), stored), GROUP_PRELOAD);
    }
    this.sim.addNode(this.client, (env) => new ScriptClient(env, this.servers));
  }

  server(id: NodeId): KvGroupServer {
    return this.sim.role(id, KvGroupServer);
  }

  get scriptClient(): ScriptClient {
    return this.sim.role(this.client, ScriptClient);
  }

  /** Submits a put from the client; returns its ticket (answers land in `scriptClient.answers`). */
  put(key: string, value: string): number {
    let ticket = -1;
    this.sim.input(this.client, `put ${key}`, () => (ticket = this.scriptClient.put(key, value)));
    return ticket;
  }

  leader(): NodeId | undefined {
    return this.servers.find((s) => this.sim.isUp(s) && this.server(s).paxos.leader.isActive());
  }

  /** Runs until a leader is active; returns it. */
  electLeader(maxMs = 10_000): NodeId {
    assert(this.sim.runUntil(() => this.leader() !== undefined, maxMs), 'no leader elected');
    const l = this.leader();
    assert(l !== undefined);
    return l;
  }

  /** A crashed node loses its disk and starts again, rebuilding (or, to show the hazard, as if nothing happened). */
  loseDiskAndRestart(id: NodeId, o: { rebuild: boolean }): void {
    this.sim.wipe(id);
    if (o.rebuild) this.rebuilt.add(id);
    this.sim.restart(id);
  }

  /** Submits `count` puts of `<prefix><i>` = `value<i>` and runs until all are answered. */
  load(count: number, maxMs = 60_000, prefix = 'key'): void {
    const tickets = Array.from({ length: count }, (_, i) => this.put(`${prefix}${i}`, `value${i}`));
    const done = this.sim.runUntil(() => tickets.every((t) => this.scriptClient.answers.has(t)), maxMs);
    assert(done, `only ${tickets.filter((t) => this.scriptClient.answers.has(t)).length} of ${count} puts answered`);
  }

  /** Whether `id` has applied every slot the others have (and holds no transfer). */
  caughtUp(id: NodeId): boolean {
    const applied = this.servers.filter((s) => s !== id && this.sim.isUp(s)).map((s) => this.server(s).paxos.replica.firstUnapplied());
    const mine = this.server(id).paxos.replica;
    return mine.transferInProgress() === 0 && applied.every((a) => mine.firstUnapplied() >= a);
  }

  /** The value `id` stores for `key`, read straight from its state (no round of Paxos). */
  stored(id: NodeId, key: string): string | undefined {
    const bytes = this.server(id).peek(key);
    return bytes === undefined ? undefined : dec.decode(bytes);
  }
}
