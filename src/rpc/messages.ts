// Domain types of the exactly-once layer (DESIGN.md 2.1). The wire types in
// src/gen stay at the boundary; src/rpc/codec.ts maps between the two.
import type { ConfigNum, Seq, SessionId, ShardId } from '../core/ids.js';

/** What a client session submits, and what a replicated log stores. */
export type AmoCommand =
  | { readonly kind: 'register'; readonly nonce: number }
  | {
      readonly kind: 'request';
      readonly session: SessionId;
      readonly seq: Seq;
      /** The client holds the result of every seq below this. */
      readonly ackedBelow: Seq;
      readonly command: Uint8Array;
    }
  /** Only reads: applied in log order, never cached (a retry reads again). */
  | { readonly kind: 'read'; readonly id: number; readonly command: Uint8Array };

export type AmoResult =
  | { readonly kind: 'registered'; readonly nonce: number; readonly session: SessionId }
  | { readonly kind: 'result'; readonly session: SessionId; readonly seq: Seq; readonly result: Uint8Array }
  /** Session unknown (expired): the request's outcome cannot be told. */
  | { readonly kind: 'expired'; readonly session: SessionId; readonly seq: Seq }
  | { readonly kind: 'read'; readonly id: number; readonly result: Uint8Array }
  /**
   * The group does not serve `shard` at its config `configNum`: nothing was
   * applied. `refused` names the command answered (its payload left out).
   */
  | { readonly kind: 'wrongGroup'; readonly shard: ShardId; readonly configNum: ConfigNum; readonly refused: AmoCommand };

/** A command with the shard whose exactly-once table it goes to (a session is per client and shard). */
export interface ShardedCommand {
  readonly shard: ShardId;
  readonly command: AmoCommand;
}

/** Client <-> server messages of this layer, as carried by a transport. */
export type RpcMessage =
  | { readonly type: 'ClientCommand'; readonly shard: ShardId; readonly command: AmoCommand }
  | { readonly type: 'ClientResult'; readonly shard: ShardId; readonly result: AmoResult };

export type RpcTimer = { readonly type: 'SessionRetry'; readonly owner: number };
