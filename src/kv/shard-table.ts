// Which shards a KV group serves, and where it stands with each (DESIGN.md
// 2.4): the per-shard state machine, applied identically on every replica
// through the group's log. Pure: it reads and writes only the store it is
// handed (the group's state space), and caches what it read (the installed
// config and one small record per shard: bounded by the shard count).
//
// Layout: `cfg` the installed config; `o/<shard>` the shard's record; the
// shard's data and exactly-once table under its own prefix (shardPrefix), one
// contiguous range that moves and is deleted as a whole.
//
// Walking configs (strictly in order, never skipping one): installing config
// n+1 needs every shard received for n in. Then a shard newly owned becomes
// receiving from its previous owner (or serving, empty, if it had none); a
// shard no longer owned stops being served at once and is kept, frozen, as
// handing off until the receiver says it has it. A config that gives back a
// shard still handed off waits until that copy is deleted.
//
// Invariants (checkInvariants):
// - a serving or receiving shard is owned by this group in the installed
//   config, and every owned shard is serving or receiving;
// - a handing-off shard was last owned in a config before the installed one;
// - only a shard whose last chunk arrived serves a pulled range: chunks apply
//   in order from the durable `nextKey`, each once.
import type { StateStore } from '../core/application.js';
import { assert, assertNever } from '../core/assert.js';
import { type ConfigNum, type GroupId, type ShardId, shardId } from '../core/ids.js';
import { mark } from '../core/marks.js';
import { shardPrefix } from '../paxos/group-server.js';
import { decodeShardConfig, encodeShardConfig } from '../shardmaster/codec.js';
import { initialConfig, type ShardConfig } from '../shardmaster/config.js';
import { decodeRecord, encodeRecord } from './migration-codec.js';
import type { KvGroupStep, ShardNotice, ShardRecord, ShardState } from './migration-messages.js';

/** The group's state space, with range clears. */
export interface ShardStore extends StateStore {
  /** Deletes every key that starts with `prefix`. */
  clear(prefix: string): void;
}

const CONFIG_KEY = 'cfg';
const EMPTY: ShardRecord = { state: undefined, notice: undefined };

export class ShardTable {
  private config: ShardConfig;
  private readonly records: ShardRecord[] = [];

  constructor(
    readonly self: GroupId,
    readonly shards: number,
    private readonly store: ShardStore,
  ) {
    this.config = initialConfig(shards);
    this.load();
  }

  /** Reads the installed config and the shard records (at start, and after a state transfer replaced them). */
  load(): void {
    const bytes = this.store.get(CONFIG_KEY);
    this.config = bytes === undefined ? initialConfig(this.shards) : decodeShardConfig(bytes);
    assert(this.config.shards.length === this.shards, 'the stored config has another shard count');
    for (let s = 0; s < this.shards; s++) {
      const r = this.store.get(recordKey(shardId(s)));
      this.records[s] = r === undefined ? EMPTY : decodeRecord(r);
    }
  }

  installed(): ShardConfig {
    return this.config;
  }

  record(s: ShardId): ShardRecord {
    return this.records[s] ?? EMPTY;
  }

  /** The config number to answer WrongGroup with, or undefined if this group serves `s` now. */
  refusal(s: ShardId): ConfigNum | undefined {
    const serves = this.config.shards[s] === this.self && this.record(s).state?.kind === 'serving';
    return serves ? undefined : this.config.num;
  }

  /** Shards still being received for the installed config, with where each stands. */
  receiving(): Array<[ShardId, Extract<ShardState, { kind: 'receiving' }>]> {
    const out: Array<[ShardId, Extract<ShardState, { kind: 'receiving' }>]> = [];
    this.records.forEach((r, s) => {
      if (r.state?.kind === 'receiving') out.push([shardId(s), r.state]);
    });
    return out;
  }

  /** Sources still to be told they may delete a shard. */
  notices(): Array<[ShardId, ShardNotice]> {
    const out: Array<[ShardId, ShardNotice]> = [];
    this.records.forEach((r, s) => {
      if (r.notice !== undefined) out.push([shardId(s), r.notice]);
    });
    return out;
  }

  /**
   * Config `next` may be installed now: it follows the installed one, every shard received for that is in, and
   * no shard it gives back to this group is still being handed off (its receiver may still be pulling that copy:
   * it must say it has it, and the copy be deleted, before the shard is received here again).
   */
  canInstall(next: Pick<ShardConfig, 'num' | 'shards'>): boolean {
    if (next.num !== this.config.num + 1 || this.receiving().length > 0) return false;
    return this.records.every((r, s) => r.state?.kind !== 'handingOff' || next.shards[s] !== this.self);
  }

  /** Shard `s` as last owned here in `configNum` is frozen (no longer served, not deleted): a pull may read it. */
  frozen(s: ShardId, configNum: ConfigNum): boolean {
    const st = this.record(s).state;
    return this.config.num > configNum && st?.kind === 'handingOff' && st.configNum === configNum;
  }

  apply(step: KvGroupStep): void {
    switch (step.kind) {
      case 'install':
        return this.install(step.config);
      case 'chunk':
        return this.chunk(step);
      case 'delete':
        return this.delete(step.shard, step.configNum);
      case 'noticeAcked':
        return this.noticeAcked(step.shard, step.configNum);
      default:
        return assertNever(step, 'KvGroupStep');
    }
  }

  checkInvariants(): void {
    for (let s = 0; s < this.shards; s++) {
      const owned = this.config.shards[s] === this.self;
      const st = this.records[s]?.state;
      const live = st?.kind === 'serving' || st?.kind === 'receiving';
      assert(owned === live, `shard ${s}: owned ${owned} but ${st?.kind ?? 'no state'} at config ${this.config.num}`);
      if (st?.kind === 'handingOff') assert(st.configNum < this.config.num, `shard ${s} handed off at a future config`);
      if (st?.kind === 'receiving') assert(st.configNum === this.config.num - 1, `shard ${s} received for an older config`);
    }
  }

  private install(next: ShardConfig): void {
    if (!this.canInstall(next)) {
      mark('kv group skips a config it cannot install yet');
      return;
    }
    const prev = this.config;
    for (let i = 0; i < this.shards; i++) {
      const s = shardId(i);
      const was = prev.shards[s];
      const now = next.shards[s];
      const r = this.record(s);
      if (now === this.self && was !== this.self) {
        assert(r.state === undefined, `shard ${s} comes back while ${r.state?.kind ?? ''}`);
        if (was === undefined) {
          this.put(s, { state: { kind: 'serving' }, notice: r.notice }); // first owner: nothing to receive
        } else {
          const servers = prev.groups.get(was);
          assert(servers !== undefined, `config ${prev.num} names owner ${was} of shard ${s} but not its servers`);
          const state: ShardState = { kind: 'receiving', from: was, servers, configNum: prev.num, nextKey: '' };
          this.put(s, { state, notice: r.notice });
        }
      } else if (now !== this.self && was === this.self) {
        assert(r.state?.kind === 'serving', `shard ${s} handed off while ${r.state?.kind ?? 'absent'}`);
        mark('kv group hands off a shard');
        this.put(s, { state: { kind: 'handingOff', configNum: prev.num }, notice: r.notice });
      }
    }
    this.config = next;
    this.store.put(CONFIG_KEY, encodeShardConfig(next));
    mark('kv group installs a config');
  }

  private chunk(c: Extract<KvGroupStep, { kind: 'chunk' }>): void {
    const r = this.record(c.shard);
    const st = r.state;
    if (st?.kind !== 'receiving' || st.configNum !== c.configNum || st.nextKey !== c.fromKey) {
      mark('kv group skips a stale or out-of-order chunk');
      return;
    }
    const prefix = shardPrefix(c.shard);
    for (const [key, value] of c.entries) this.store.put(prefix + key, value);
    if (c.next !== undefined) {
      this.put(c.shard, { state: { ...st, nextKey: c.next }, notice: r.notice });
      return;
    }
    mark('kv group serves a shard it received');
    const notice: ShardNotice = { group: st.from, servers: st.servers, configNum: st.configNum };
    this.put(c.shard, { state: { kind: 'serving' }, notice });
  }

  private delete(s: ShardId, configNum: ConfigNum): void {
    const r = this.record(s);
    if (r.state?.kind !== 'handingOff' || r.state.configNum !== configNum) {
      mark('kv group skips a deletion of a shard it no longer holds');
      return;
    }
    mark('source deletes a handed-off shard after the receiver has it');
    this.store.clear(shardPrefix(s));
    this.put(s, { state: undefined, notice: r.notice });
  }

  private noticeAcked(s: ShardId, configNum: ConfigNum): void {
    const r = this.record(s);
    if (r.notice?.configNum !== configNum) return;
    this.put(s, { state: r.state, notice: undefined });
  }

  private put(s: ShardId, r: ShardRecord): void {
    this.records[s] = r;
    if (r.state === undefined && r.notice === undefined) this.store.del(recordKey(s));
    else this.store.put(recordKey(s), encodeRecord(r));
  }
}

function recordKey(s: ShardId): string {
  return `o/${String(s).padStart(4, '0')}`;
}
