// One server of a KV replica group (DESIGN.md 2.2, 2.4): the generic group
// server (src/paxos/group-server.ts) around the KV application, sharded when
// the cluster has a shard master. Sharded, it serves only the shards its
// installed config gives it and has finished receiving (WrongGroup for the
// rest, at admission and again when applying), and its leader drives the
// group through configs and migrations, every decision through the group's
// own log (shard-table.ts):
// - it asks the shard master's replicas for config installed+1 and proposes
//   InstallConfig once every shard it receives for the installed one is in;
// - for each shard it receives, it pulls the frozen range from the source's
//   replicas in byte-bounded chunks and proposes each as a ShardChunk, which
//   applies only at the shard's durable position (resumes after any crash);
// - once a shard serves, it tells the source, until acknowledged, that the
//   source may delete it (ShardInstalled); a source proposes DeleteShard on
//   that notice only.
// Any replica of a source answers a pull once it installed a later config:
// the shard is frozen there, so a scan of a snapshot reads it whole.
//
// Messages between groups come from the network: validated at this door
// (sender a node of the cluster, numbers in range), counted and dropped
// otherwise. Only the leader acts on answers; every replica answers pulls.
import { assert } from '../core/assert.js';
import type { Env } from '../core/env.js';
import { type ConfigNum, configNum, type GroupId, groupId, type NodeId, type ShardId } from '../core/ids.js';
import { mark } from '../core/marks.js';
import { clear, type ScanRequest, type ScanResult, type StoredState } from '../core/storage.js';
import {
  type GroupMessage,
  type GroupObserver,
  GroupServer,
  type GroupServerConfig,
  type GroupTimer,
  STATE_SPACE,
  shardPrefix,
} from '../paxos/group-server.js';
import { WireError } from '../rpc/codec.js';
import type { AmoCommand } from '../rpc/messages.js';
import { decodeKvCommand } from './codec.js';
import { KvApplication } from './kv-application.js';
import { decodeGroupPeer, decodeStep, encodeGroupPeer, encodeStep } from './migration-codec.js';
import type { GroupPeerBody, KvGroupStep } from './migration-messages.js';
import { ShardTable } from './shard-table.js';

/** What a KV group needs to know to be sharded. */
export interface KvSharding {
  readonly group: GroupId;
  readonly shards: number;
  /** The shard master's servers (group 0). */
  readonly shardMaster: readonly NodeId[];
  /** Every node of the cluster: a group message from any other is dropped. */
  readonly clusterNodes: ReadonlySet<NodeId>;
  /** key -> shard, as the SDK routes (src/shardmaster/key-shard.ts). */
  readonly shardOf: (key: string) => ShardId;
  /** The leader asks for the next config, and pulls again, this many ticks apart. */
  readonly pollTicks: number;
  /** Shards pulled at once, and pulls answered at once (each a scan of up to maxChunkBytes). */
  readonly maxPulls: number;
}

export const DEFAULT_SHARDING_TUNING = { pollTicks: 5, maxPulls: 4 } as const;

interface PendingScan {
  readonly to: NodeId;
  readonly replyGroup: GroupId;
  readonly shard: ShardId;
  readonly configNum: ConfigNum;
  readonly fromKey: string;
}

export class KvGroupServer extends GroupServer {
  private readonly table: ShardTable | undefined;
  private ticks = 0;
  private rotation = 0;
  /** Steps this leader proposed and when (tick), so an answer repeated by retries is not proposed again and again. */
  private readonly proposed = new Map<string, number>();
  /** Scans answering pulls, by snapshot id. */
  private readonly scans = new Map<number, PendingScan>();
  private readonly chunkBytes: number;

  constructor(
    private readonly kvEnv: Env<GroupMessage, GroupTimer>,
    config: GroupServerConfig,
    stored: StoredState,
    observer: GroupObserver = {},
    private readonly sharding?: KvSharding,
  ) {
    super(kvEnv, sharding === undefined ? config : { ...config, shards: sharding.shards }, new KvApplication(), stored, observer);
    this.chunkBytes = config.maxChunkBytes;
    if (sharding !== undefined) {
      this.table = new ShardTable(sharding.group, sharding.shards, {
        get: (key) => kvEnv.read(STATE_SPACE, key),
        put: (key, value) => kvEnv.persistUnsynced({ op: 'put', space: STATE_SPACE, key, value }),
        del: (key) => kvEnv.persistUnsynced({ op: 'del', space: STATE_SPACE, key }),
        clear: (prefix) => kvEnv.persistUnsynced(clear(STATE_SPACE, prefix)),
      });
    }
  }

  /** The per-shard state, for tests and status; undefined when not sharded. */
  shardTable(): ShardTable | undefined {
    return this.table;
  }

  override checkInvariants(): void {
    super.checkInvariants();
    this.table?.checkInvariants();
  }

  protected override misrouted(shard: ShardId, command: AmoCommand): string | undefined {
    if (this.sharding === undefined || command.kind === 'register') return undefined;
    let key: string;
    try {
      key = decodeKvCommand(command.command).key;
    } catch {
      return undefined; // the application refuses it with its own error
    }
    const owner = this.sharding.shardOf(key);
    return owner === shard ? undefined : `key ${JSON.stringify(key.slice(0, 80))} is in shard ${owner}, not ${shard}`;
  }

  protected override refusal(shard: ShardId): ConfigNum | undefined {
    return this.table?.refusal(shard);
  }

  protected override restored(): void {
    this.table?.load();
  }

  protected override applyStep(bytes: Uint8Array): void {
    const table = this.table;
    if (table === undefined) return super.applyStep(bytes);
    let step: KvGroupStep;
    try {
      step = decodeStep(bytes, table);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      mark('kv group skips a step that does not decode');
      return;
    }
    table.apply(step);
  }

  protected override onTick(): void {
    const table = this.table;
    const sharding = this.sharding;
    if (table === undefined || sharding === undefined || !this.paxos.leader.leads()) return;
    this.ticks += 1;
    if (this.ticks % sharding.pollTicks !== 0) return;
    this.rotation += 1;
    const receiving = table.receiving();
    if (receiving.length === 0) {
      this.sendTo(SHARD_MASTER_GROUP, pick(sharding.shardMaster, this.rotation), { kind: 'configQuery', num: nextNum(table) });
    }
    for (const [shard, st] of receiving.slice(0, sharding.maxPulls)) {
      this.sendTo(st.from, pick(st.servers, this.rotation), { kind: 'pull', shard, configNum: st.configNum, fromKey: st.nextKey });
    }
    for (const [shard, notice] of table.notices()) {
      this.sendTo(notice.group, pick(notice.servers, this.rotation), { kind: 'installed', shard, configNum: notice.configNum });
    }
    for (const [key, at] of this.proposed) if (this.ticks - at > 4 * sharding.pollTicks) this.proposed.delete(key);
  }

  protected override onHostMessage(from: NodeId, body: Uint8Array): void {
    const table = this.table;
    const sharding = this.sharding;
    if (table === undefined || sharding === undefined) return super.onHostMessage(from, body);
    if (!sharding.clusterNodes.has(from)) {
      this.paxos.invalid.count('group-message-from-stranger', `a group message from ${from}, no node of this cluster`);
      return;
    }
    let m;
    try {
      m = decodeGroupPeer(body, table);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.paxos.invalid.count('group-message-malformed', `a group message from ${from}: ${e.message}`);
      return;
    }
    this.onGroupMessage(from, m.replyGroup, m.body, table);
  }

  protected override onHostScanned(request: ScanRequest, result: ScanResult | undefined): boolean {
    const pending = this.scans.get(request.snapshot);
    if (pending === undefined) return false;
    this.scans.delete(request.snapshot);
    this.kvEnv.releaseSnapshot(request.snapshot);
    if (result === undefined) return true; // the snapshot was lost (a restart): the receiver asks again
    const prefix = shardPrefix(pending.shard);
    const entries = result.entries.map(([k, v]) => [k.slice(prefix.length), v] as const);
    const next = result.next === undefined || !result.next.startsWith(prefix) ? undefined : result.next.slice(prefix.length);
    mark('kv group answers a pull from a frozen shard');
    this.sendTo(pending.replyGroup, pending.to, {
      kind: 'pullReply',
      shard: pending.shard,
      configNum: pending.configNum,
      fromKey: pending.fromKey,
      entries,
      next,
    });
    return true;
  }

  private onGroupMessage(from: NodeId, replyGroup: GroupId, m: GroupPeerBody, table: ShardTable): void {
    const leads = this.paxos.leader.leads();
    switch (m.kind) {
      case 'configReply':
        if (leads && table.canInstall(m.config)) this.proposeOnce(`install ${m.config.num}`, { kind: 'install', config: m.config });
        return;
      case 'pull':
        this.answerPull(from, replyGroup, m, table);
        return;
      case 'pullReply': {
        const st = table.record(m.shard).state;
        if (!leads || st?.kind !== 'receiving' || st.configNum !== m.configNum || st.nextKey !== m.fromKey) return;
        this.proposeOnce(`chunk ${m.shard} ${m.configNum} ${m.fromKey}`, { ...m, kind: 'chunk' });
        return;
      }
      case 'installed':
        if (table.installed().num <= m.configNum) return; // it cannot have the shard yet: a forged or confused notice
        if (table.frozen(m.shard, m.configNum)) {
          if (leads) this.proposeOnce(`delete ${m.shard} ${m.configNum}`, { kind: 'delete', shard: m.shard, configNum: m.configNum });
          return; // acknowledged once the deletion applied, on a later notice
        }
        this.sendTo(replyGroup, from, { kind: 'installedAck', shard: m.shard, configNum: m.configNum });
        return;
      case 'installedAck':
        if (leads && table.record(m.shard).notice?.configNum === m.configNum) {
          this.proposeOnce(`acked ${m.shard} ${m.configNum}`, { kind: 'noticeAcked', shard: m.shard, configNum: m.configNum });
        }
        return;
      case 'configQuery':
        this.paxos.invalid.count('config-query-at-kv-group', `a config query from ${from} at a KV group`);
        return;
    }
  }

  private answerPull(from: NodeId, replyGroup: GroupId, m: Extract<GroupPeerBody, { kind: 'pull' }>, table: ShardTable): void {
    if (!table.frozen(m.shard, m.configNum)) {
      mark('kv group does not answer a pull for a shard not frozen here yet');
      return;
    }
    if (this.scans.size >= (this.sharding?.maxPulls ?? 0)) return; // busy: the receiver asks again
    const prefix = shardPrefix(m.shard);
    const snapshot = this.kvEnv.openSnapshot();
    this.scans.set(snapshot, { to: from, replyGroup, shard: m.shard, configNum: m.configNum, fromKey: m.fromKey });
    this.kvEnv.scan({ snapshot, space: STATE_SPACE, gte: prefix + m.fromKey, lt: prefixEnd(prefix), maxBytes: this.chunkBytes });
  }

  private proposeOnce(key: string, step: KvGroupStep): void {
    if (this.proposed.has(key)) return;
    this.proposed.set(key, this.ticks);
    this.proposeStep(encodeStep(step));
  }

  private sendTo(group: GroupId, to: NodeId, body: GroupPeerBody): void {
    assert(this.sharding !== undefined);
    this.sendToGroup(group, to, { type: 'HostMessage', body: encodeGroupPeer({ replyGroup: this.sharding.group, body }) });
  }

}

/** The shard master's group (src/runtime/cluster-config.ts names it too). */
const SHARD_MASTER_GROUP = groupId(0);

function nextNum(table: ShardTable): ConfigNum {
  return configNum(table.installed().num + 1);
}

function pick<T>(xs: readonly T[], i: number): T {
  const x = xs[i % xs.length];
  assert(x !== undefined, 'picking from an empty list');
  return x;
}

/** The least key past every key that starts with `prefix` (prefixes are ASCII). */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
