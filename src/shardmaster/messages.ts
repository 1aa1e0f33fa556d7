// Domain types of the shard-master application (DESIGN.md 2.3). The wire
// types in src/gen stay at the boundary; src/shardmaster/codec.ts maps between
// the two.
import type { ConfigNum, GroupId, ShardId } from '../core/ids.js';
import type { ShardConfig } from './config.js';

/** Why a command was refused; the wire's ShardMasterErrorCode without its prefix. */
export type ShardMasterErrorCodeName =
  | 'MALFORMED_COMMAND'
  | 'BAD_GROUP_ID'
  | 'BAD_SERVERS'
  | 'GROUP_ALREADY_JOINED'
  | 'UNKNOWN_GROUP'
  | 'TOO_MANY_GROUPS'
  | 'SHARD_OUT_OF_RANGE'
  | 'ALREADY_OWNER'
  | 'NO_SUCH_CONFIG'
  | 'LAST_GROUP';

/**
 * Numbers are whatever the wire carried (any uint32) and servers any strings:
 * the application checks them (validate.ts) and refuses with an error code.
 */
export type ShardMasterCommand =
  | { readonly kind: 'join'; readonly group: GroupId; readonly servers: readonly string[] }
  | { readonly kind: 'leave'; readonly group: GroupId }
  | { readonly kind: 'move'; readonly shard: ShardId; readonly group: GroupId }
  /** `num` undefined: the latest config. */
  | { readonly kind: 'query'; readonly num: ConfigNum | undefined };

export type ShardMasterResult =
  /** Answer to a query. */
  | { readonly kind: 'config'; readonly config: ShardConfig }
  /** A join, leave or move took effect and made config `num`. */
  | { readonly kind: 'done'; readonly num: ConfigNum }
  /** The command was refused and changed nothing. */
  | { readonly kind: 'error'; readonly code: ShardMasterErrorCodeName; readonly message: string };

/** Why a command is refused, as data: the application turns it into an error result. */
export interface ShardMasterViolation {
  readonly code: ShardMasterErrorCodeName;
  readonly message: string;
}

/** A refused command, as an exception: what the codec throws on bad command bytes and the SDK on a bad call. */
export class ShardMasterInputError extends Error {
  override readonly name = 'ShardMasterInputError';
  readonly code: ShardMasterErrorCodeName;

  constructor(violation: ShardMasterViolation) {
    super(violation.message);
    this.code = violation.code;
  }
}
