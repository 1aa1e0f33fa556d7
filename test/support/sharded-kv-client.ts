// A simulated client of a sharded cluster: issues random get/put/delete one at
// a time through the SDK's router (src/client/shard-router.ts), which loads
// configs from the shard master and follows shards as they move, and records
// the history the linearizability checker reads.
import { assert } from '../../src/core/assert.js';
import type { Env, ProtocolNode } from '../../src/core/env.js';
import { groupId, millis, type NodeId } from '../../src/core/ids.js';
import { Prng } from '../../src/core/prng.js';
import { ShardRouter } from '../../src/client/shard-router.js';
import { decodeKvResult, encodeKvCommand } from '../../src/kv/codec.js';
import type { KvCommand } from '../../src/kv/messages.js';
import type { NodeMessage, NodeTimer } from '../../src/paxos/group-env.js';
import type { GroupMessage, GroupTimer } from '../../src/paxos/group-server.js';
import type { Outcome } from '../../src/rpc/client-session.js';
import type { KeySharder } from '../../src/shardmaster/key-shard.js';
import type { HistoryEntry, KvOp } from '../checkers/linearizability.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

export type ShardedClientTimer = GroupTimer | { readonly type: 'Think' };

export interface ShardedKvClientOptions {
  readonly shardMaster: readonly NodeId[];
  readonly sharder: KeySharder;
  readonly ops: number;
  readonly meanThinkMs: number;
  readonly keys: readonly string[];
  readonly seed: number;
  readonly now: () => number;
}

export class ShardedKvClient implements ProtocolNode<NodeMessage<GroupMessage>, NodeTimer<ShardedClientTimer>> {
  readonly history: HistoryEntry[] = [];
  private readonly router: ShardRouter;
  private readonly rng: Prng;
  private issued = 0;
  private current: { entry: HistoryEntry; ticket: number } | undefined;

  constructor(
    private readonly env: Env<NodeMessage<GroupMessage>, NodeTimer<ShardedClientTimer>>,
    private readonly name: string,
    private readonly options: ShardedKvClientOptions,
  ) {
    this.rng = new Prng(options.seed);
    this.router = new ShardRouter(env, { shardMaster: options.shardMaster, retryMs: millis(60), window: 1 }, (t, o) => this.complete(t, o));
    this.think();
  }

  done(): boolean {
    return this.current === undefined && this.issued >= this.options.ops;
  }

  onMessage(from: NodeId, m: NodeMessage<GroupMessage>): void {
    const message = m.message;
    if (message.type === 'ClientResult') this.router.onMessage(from, { group: m.group, message });
  }

  onTimer(t: NodeTimer<ShardedClientTimer>): void {
    if (t.timer.type === 'Think') this.next();
    else if (t.timer.type === 'SessionRetry') this.router.onTimer({ group: t.group, timer: t.timer });
  }

  private think(): void {
    if (this.issued < this.options.ops) {
      this.env.setTimer({ group: groupId(0), timer: { type: 'Think' } }, millis(this.rng.int(0, 2 * this.options.meanThinkMs)));
    }
  }

  private next(): void {
    if (this.issued >= this.options.ops) return;
    this.issued += 1;
    const op = this.randomOp();
    const entry: HistoryEntry = { client: this.name, op, call: this.options.now() };
    this.history.push(entry);
    const ticket = this.router.submit(this.options.sharder.shardOf(op.key), encodeKvCommand(toCommand(op)), op.kind === 'get');
    this.current = { entry, ticket };
  }

  private complete(ticket: number, outcome: Outcome): void {
    const cur = this.current;
    assert(cur !== undefined && cur.ticket === ticket, 'an outcome for a command not in flight');
    this.current = undefined;
    if (outcome.ok) {
      const r = decodeKvResult(outcome.result);
      assert(r.kind !== 'error', `server refused a valid command: ${JSON.stringify(r)}`);
      const output = r.kind === 'value' && r.value !== undefined ? dec.decode(r.value) : undefined;
      cur.entry.ret = { time: this.options.now(), output };
    }
    this.think();
  }

  private randomOp(): KvOp {
    const key = this.options.keys[this.rng.int(0, this.options.keys.length - 1)];
    assert(key !== undefined);
    const roll = this.rng.next();
    if (roll < 0.45) return { kind: 'get', key };
    if (roll < 0.9) return { kind: 'put', key, value: `${this.name}.${this.issued}` };
    return { kind: 'delete', key };
  }
}

function toCommand(op: KvOp): KvCommand {
  switch (op.kind) {
    case 'get':
      return { kind: 'get', key: op.key };
    case 'put':
      return { kind: 'put', key: op.key, value: enc.encode(op.value) };
    case 'delete':
      return { kind: 'delete', key: op.key };
  }
}
