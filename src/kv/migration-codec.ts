// The one mapping between shard migration's domain types and the wire
// (STYLE.md 5). What arrives from another group is checked here: numbers in
// range, chunk keys ascending inside their bounds; anything else is a
// WireError for the door to count and drop, never an assertion.
import { assertNever } from '../core/assert.js';
import { type ConfigNum, configNum, type GroupId, groupId, type NodeId, parseNodeId, type ShardId, shardId } from '../core/ids.js';
import * as groups from '../gen/shardpax/v1/groups.js';
import * as wire from '../gen/shardpax/v1/kv.js';
import { WireError, wireNat } from '../rpc/codec.js';
import { shardConfigFromWire, shardConfigToWire } from '../shardmaster/codec.js';
import { MAX_GROUP_ID } from '../shardmaster/config.js';
import type { GroupPeerBody, GroupPeerMessage, KvGroupStep, ShardEntry, ShardRecord, ShardState } from './migration-messages.js';

/** Checks of numbers from the wire against the cluster's shard count. */
export interface MigrationBounds {
  readonly shards: number;
}

export function encodeStep(step: KvGroupStep): Uint8Array {
  return wire.KvGroupStep.encode({ kind: stepToWire(step) }).finish();
}

/** Throws WireError on bytes that are no valid step. */
export function decodeStep(bytes: Uint8Array, bounds: MigrationBounds): KvGroupStep {
  const k = decodeWire(() => wire.KvGroupStep.decode(bytes)).kind;
  if (k === undefined) throw new WireError('KvGroupStep without a kind');
  switch (k.$case) {
    case 'install':
      if (k.value.config === undefined) throw new WireError('InstallConfig without a config');
      return { kind: 'install', config: checkedConfig(shardConfigFromWire(k.value.config), bounds) };
    case 'chunk': {
      const c = chunkFromWire(k.value, bounds);
      return { kind: 'chunk', ...c };
    }
    case 'delete':
      return { kind: 'delete', shard: wireShard(k.value.shard, bounds), configNum: wireConfig(k.value.configNum) };
    case 'noticeAcked':
      return { kind: 'noticeAcked', shard: wireShard(k.value.shard, bounds), configNum: wireConfig(k.value.configNum) };
    default:
      return assertNever(k, 'KvGroupStep');
  }
}

function stepToWire(step: KvGroupStep): wire.KvGroupStep['kind'] {
  switch (step.kind) {
    case 'install':
      return { $case: 'install', value: { config: shardConfigToWire(step.config) } };
    case 'chunk':
      return { $case: 'chunk', value: chunkToWire(step) };
    case 'delete':
      return { $case: 'delete', value: { shard: step.shard, configNum: step.configNum } };
    case 'noticeAcked':
      return { $case: 'noticeAcked', value: { shard: step.shard, configNum: step.configNum } };
    default:
      return assertNever(step, 'KvGroupStep');
  }
}

export function encodeGroupPeer(m: GroupPeerMessage): Uint8Array {
  return groups.GroupPeerMessage.encode({ replyGroup: m.replyGroup, kind: peerToWire(m.body) }).finish();
}

/** Throws WireError on bytes that are no valid message. */
export function decodeGroupPeer(bytes: Uint8Array, bounds: MigrationBounds): GroupPeerMessage {
  const w = decodeWire(() => groups.GroupPeerMessage.decode(bytes));
  const replyGroup = wireGroup(w.replyGroup);
  const k = w.kind;
  if (k === undefined) throw new WireError('GroupPeerMessage without a kind');
  let body: GroupPeerBody;
  switch (k.$case) {
    case 'configQuery':
      body = { kind: 'configQuery', num: wireConfig(k.value.num) };
      break;
    case 'configReply':
      if (k.value.config === undefined) throw new WireError('ConfigReply without a config');
      body = { kind: 'configReply', config: checkedConfig(shardConfigFromWire(k.value.config), bounds) };
      break;
    case 'pull':
      body = {
        kind: 'pull',
        shard: wireShard(k.value.shard, bounds),
        configNum: wireConfig(k.value.configNum),
        fromKey: k.value.fromKey,
      };
      break;
    case 'pullReply':
      body = { kind: 'pullReply', ...chunkFromWire(k.value, bounds) };
      break;
    case 'installed':
      body = { kind: 'installed', shard: wireShard(k.value.shard, bounds), configNum: wireConfig(k.value.configNum) };
      break;
    case 'installedAck':
      body = { kind: 'installedAck', shard: wireShard(k.value.shard, bounds), configNum: wireConfig(k.value.configNum) };
      break;
    default:
      return assertNever(k, 'GroupPeerMessage');
  }
  return { replyGroup, body };
}

function peerToWire(b: GroupPeerBody): groups.GroupPeerMessage['kind'] {
  switch (b.kind) {
    case 'configQuery':
      return { $case: 'configQuery', value: { num: b.num } };
    case 'configReply':
      return { $case: 'configReply', value: { config: shardConfigToWire(b.config) } };
    case 'pull':
      return { $case: 'pull', value: { shard: b.shard, configNum: b.configNum, fromKey: b.fromKey } };
    case 'pullReply':
      return { $case: 'pullReply', value: chunkToWire(b) };
    case 'installed':
      return { $case: 'installed', value: { shard: b.shard, configNum: b.configNum } };
    case 'installedAck':
      return { $case: 'installedAck', value: { shard: b.shard, configNum: b.configNum } };
    default:
      return assertNever(b, 'GroupPeerBody');
  }
}

interface Chunk {
  readonly shard: ShardId;
  readonly configNum: ConfigNum;
  readonly fromKey: string;
  readonly entries: readonly ShardEntry[];
  readonly next: string | undefined;
}

function chunkToWire(c: Chunk): groups.ShardPullReply {
  const w: groups.ShardPullReply = {
    shard: c.shard,
    configNum: c.configNum,
    fromKey: c.fromKey,
    entries: c.entries.map(([key, value]) => ({ key, value })),
  };
  return c.next === undefined ? w : { ...w, next: c.next };
}

function chunkFromWire(w: groups.ShardPullReply, bounds: MigrationBounds): Chunk {
  const entries: ShardEntry[] = [];
  let previous: string | undefined;
  for (const e of w.entries) {
    if (e.key < w.fromKey || (previous !== undefined && e.key <= previous) || (w.next !== undefined && e.key >= w.next)) {
      throw new WireError(`chunk key ${JSON.stringify(e.key.slice(0, 80))} out of order or outside [from_key, next)`);
    }
    previous = e.key;
    entries.push([e.key, e.value]);
  }
  if (w.next !== undefined && w.next <= w.fromKey) throw new WireError('chunk next key not past its from_key');
  return { shard: wireShard(w.shard, bounds), configNum: wireConfig(w.configNum), fromKey: w.fromKey, entries, next: w.next };
}

export function encodeRecord(r: ShardRecord): Uint8Array {
  const w: wire.ShardStateRecord = { kind: r.state === undefined ? undefined : stateToWire(r.state) };
  const notice = r.notice === undefined ? undefined : { group: r.notice.group, servers: [...r.notice.servers], configNum: r.notice.configNum };
  return wire.ShardStateRecord.encode(notice === undefined ? w : { ...w, notice }).finish();
}

/** Our own record from our own disk: a failure here is damage, reported as a WireError for the caller to escalate. */
export function decodeRecord(bytes: Uint8Array): ShardRecord {
  const w = decodeWire(() => wire.ShardStateRecord.decode(bytes));
  const n = w.notice;
  const notice = n === undefined ? undefined : { group: wireGroup(n.group), servers: n.servers.map(wireNode), configNum: wireConfig(n.configNum) };
  return { state: w.kind === undefined ? undefined : stateFromWire(w.kind), notice };
}

function stateToWire(s: ShardState): NonNullable<wire.ShardStateRecord['kind']> {
  switch (s.kind) {
    case 'serving':
      return { $case: 'serving', value: {} };
    case 'receiving':
      return {
        $case: 'receiving',
        value: { fromGroup: s.from, fromServers: [...s.servers], configNum: s.configNum, nextKey: s.nextKey },
      };
    case 'handingOff':
      return { $case: 'handingOff', value: { configNum: s.configNum } };
    default:
      return assertNever(s, 'ShardState');
  }
}

function stateFromWire(k: NonNullable<wire.ShardStateRecord['kind']>): ShardState {
  switch (k.$case) {
    case 'serving':
      return { kind: 'serving' };
    case 'receiving':
      return {
        kind: 'receiving',
        from: wireGroup(k.value.fromGroup),
        servers: k.value.fromServers.map(wireNode),
        configNum: wireConfig(k.value.configNum),
        nextKey: k.value.nextKey,
      };
    case 'handingOff':
      return { kind: 'handingOff', configNum: wireConfig(k.value.configNum) };
    default:
      return assertNever(k, 'ShardStateRecord');
  }
}

function checkedConfig<C extends { readonly shards: readonly unknown[]; readonly num: ConfigNum }>(c: C, bounds: MigrationBounds): C {
  if (c.shards.length !== bounds.shards) throw new WireError(`config ${c.num} has ${c.shards.length} shards, not ${bounds.shards}`);
  return c;
}

function decodeWire<T>(decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    throw new WireError(`does not decode: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function wireShard(n: number, bounds: MigrationBounds): ShardId {
  return shardId(wireNat(n, bounds.shards - 1, 'shard'));
}

function wireConfig(n: number): ConfigNum {
  return configNum(wireNat(n, Number.MAX_SAFE_INTEGER, 'config number'));
}

function wireGroup(n: number): GroupId {
  return groupId(wireNat(n, MAX_GROUP_ID, 'group'));
}

function wireNode(s: string): NodeId {
  const id = parseNodeId(s);
  if (id === undefined) throw new WireError(`${JSON.stringify(s.slice(0, 80))} is not a node id`);
  return id;
}
