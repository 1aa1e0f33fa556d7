// A simulated KV client: issues random get/put/delete one at a time through an
// exactly-once session to a replica group, and records the history the
// linearizability checker reads (call time, return time, observed output).
import { assert } from '../../src/core/assert.js';
import type { Env, ProtocolNode } from '../../src/core/env.js';
import { millis, type NodeId, shardId } from '../../src/core/ids.js';
import { Prng } from '../../src/core/prng.js';
import { decodeKvResult, encodeKvCommand } from '../../src/kv/codec.js';
import type { KvCommand } from '../../src/kv/messages.js';
import type { GroupMessage, GroupTimer } from '../../src/paxos/group-server.js';
import { ClientSession, type Outcome } from '../../src/rpc/client-session.js';
import type { HistoryEntry, KvOp } from '../checkers/linearizability.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The client's own timer: the pause between one op's answer and the next op. */
export type KvClientTimer = GroupTimer | { readonly type: 'Think' };

export interface KvClientOptions {
  readonly servers: readonly NodeId[];
  readonly ops: number;
  /** Pause before each op: uniform in [0, 2 * meanThinkMs], so a run spans its fault window. */
  readonly meanThinkMs: number;
  readonly keys: readonly string[];
  readonly seed: number;
  readonly now: () => number;
}

export class KvClient implements ProtocolNode<GroupMessage, KvClientTimer> {
  readonly history: HistoryEntry[] = [];
  private readonly session: ClientSession;
  private readonly rng: Prng;
  private issued = 0;
  private current: { entry: HistoryEntry; ticket: number } | undefined;

  constructor(
    private readonly env: Env<GroupMessage, KvClientTimer>,
    private readonly name: string,
    private readonly options: KvClientOptions,
  ) {
    this.rng = new Prng(options.seed);
    this.session = new ClientSession(
      env,
      { servers: options.servers, retryMs: millis(60), window: 1, timerOwner: 0, shard: shardId(0) },
      (ticket, outcome) => this.complete(ticket, outcome),
    );
    this.think();
  }

  done(): boolean {
    return this.current === undefined && this.issued >= this.options.ops;
  }

  onMessage(_from: NodeId, m: GroupMessage): void {
    if (m.type === 'ClientResult') this.session.onResult(m.result);
  }

  onTimer(t: KvClientTimer): void {
    if (t.type === 'SessionRetry') this.session.onTimer(t);
    else if (t.type === 'Think') this.next();
  }

  private think(): void {
    if (this.issued < this.options.ops) {
      this.env.setTimer({ type: 'Think' }, millis(this.rng.int(0, 2 * this.options.meanThinkMs)));
    }
  }

  private next(): void {
    if (this.issued >= this.options.ops) return;
    this.issued += 1;
    const op = this.randomOp();
    const entry: HistoryEntry = { client: this.name, op, call: this.options.now() };
    this.history.push(entry);
    const command = encodeKvCommand(toCommand(op));
    // Gets travel as session-less reads, as the SDK sends them.
    const ticket = op.kind === 'get' ? this.session.read(command) : this.session.submit(command);
    this.current = { entry, ticket };
  }

  private complete(ticket: number, outcome: Outcome): void {
    const cur = this.current;
    assert(cur !== undefined && cur.ticket === ticket, 'an outcome for a command not in flight');
    this.current = undefined;
    // 'expired' leaves the outcome unknown: no ret, the checker allows either.
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
