// Domain types of shard migration (DESIGN.md 2.4): the KV group's own log
// steps, its per-shard state, and the messages between groups. The wire types
// stay in src/gen; src/kv/migration-codec.ts maps between the two.
import type { ConfigNum, GroupId, NodeId, ShardId } from '../core/ids.js';
import type { ShardConfig } from '../shardmaster/config.js';

/** A key and value of a shard's range, the key relative to the shard's prefix. */
export type ShardEntry = readonly [string, Uint8Array];

/** A group that still has to tell a source it may delete a shard it handed over. */
export interface ShardNotice {
  readonly group: GroupId;
  readonly servers: readonly NodeId[];
  /** The config in which the source last owned the shard. */
  readonly configNum: ConfigNum;
}

export type ShardState =
  /** Owned and served. */
  | { readonly kind: 'serving' }
  /** Owned, not served yet: pulled from `from` (which owned it in `configNum`), up to `nextKey`. */
  | {
      readonly kind: 'receiving';
      readonly from: GroupId;
      readonly servers: readonly NodeId[];
      readonly configNum: ConfigNum;
      readonly nextKey: string;
    }
  /** No longer owned since the config after `configNum`: frozen, kept until the receiver has it. */
  | { readonly kind: 'handingOff'; readonly configNum: ConfigNum };

/** What a KV group keeps about one shard (absent: no state, no data). */
export interface ShardRecord {
  readonly state: ShardState | undefined;
  readonly notice: ShardNotice | undefined;
}

/** A KV group's own steps through its log. */
export type KvGroupStep =
  | { readonly kind: 'install'; readonly config: ShardConfig }
  | {
      readonly kind: 'chunk';
      readonly shard: ShardId;
      readonly configNum: ConfigNum;
      readonly fromKey: string;
      readonly entries: readonly ShardEntry[];
      /** Where the next chunk starts; undefined on the last. */
      readonly next: string | undefined;
    }
  | { readonly kind: 'delete'; readonly shard: ShardId; readonly configNum: ConfigNum }
  | { readonly kind: 'noticeAcked'; readonly shard: ShardId; readonly configNum: ConfigNum };

/** Messages between groups; `replyGroup` is the sender's group, where answers go. */
export type GroupPeerBody =
  | { readonly kind: 'configQuery'; readonly num: ConfigNum }
  | { readonly kind: 'configReply'; readonly config: ShardConfig }
  | { readonly kind: 'pull'; readonly shard: ShardId; readonly configNum: ConfigNum; readonly fromKey: string }
  | {
      readonly kind: 'pullReply';
      readonly shard: ShardId;
      readonly configNum: ConfigNum;
      readonly fromKey: string;
      readonly entries: readonly ShardEntry[];
      readonly next: string | undefined;
    }
  | { readonly kind: 'installed'; readonly shard: ShardId; readonly configNum: ConfigNum }
  | { readonly kind: 'installedAck'; readonly shard: ShardId; readonly configNum: ConfigNum };

export interface GroupPeerMessage {
  readonly replyGroup: GroupId;
  readonly body: GroupPeerBody;
}
