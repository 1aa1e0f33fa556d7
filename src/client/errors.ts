// Errors the SDK rejects with. Each says whether the operation may have taken
// effect, so a caller knows whether retrying a write could apply it twice.
import { KvInputError } from '../kv/limits.js';
import type { ShardMasterErrorCodeName } from '../shardmaster/messages.js';

export { KvInputError };

export abstract class ShardpaxError extends Error {
  abstract readonly code: string;
  /** False only when the cluster certainly did not apply the operation. */
  abstract readonly mayHaveTakenEffect: boolean;
}

/** No server of the cluster answered. Nothing was applied. */
export class ClusterUnreachableError extends ShardpaxError {
  override readonly name = 'ClusterUnreachableError';
  readonly code = 'CLUSTER_UNREACHABLE';
  readonly mayHaveTakenEffect = false;
}

/** The operation got no answer in time. A write may still be applied later. */
export class OperationTimeoutError extends ShardpaxError {
  override readonly name = 'OperationTimeoutError';
  readonly code = 'TIMEOUT';
  constructor(
    message: string,
    readonly mayHaveTakenEffect: boolean,
  ) {
    super(message);
  }
}

/** The cluster forgot this client's session (idle too long): the operation's outcome is unknown. */
export class SessionExpiredError extends ShardpaxError {
  override readonly name = 'SessionExpiredError';
  readonly code = 'SESSION_EXPIRED';
  readonly mayHaveTakenEffect = true;
}

/** The client was closed before the operation completed. */
export class ClientClosedError extends ShardpaxError {
  override readonly name = 'ClientClosedError';
  readonly code = 'CLIENT_CLOSED';
  constructor(
    message: string,
    readonly mayHaveTakenEffect: boolean,
  ) {
    super(message);
  }
}

/**
 * An argument of the wrong type or shape, as plain JavaScript (or a cast)
 * can pass one: refused before anything is sent, never coerced. A
 * KvInputError, so one `catch` covers every refused input.
 */
export class InvalidArgumentError extends KvInputError {
  override readonly name = 'InvalidArgumentError';

  constructor(
    call: string,
    /** The argument as the caller wrote it: `key`, `options.timeoutMs`, `options.endpoints[1]`. */
    readonly argument: string,
    /** What it must be. */
    readonly expected: string,
    /** What was passed instead, described. */
    readonly got: string,
  ) {
    super({ code: 'MALFORMED_COMMAND', message: `${call}: ${argument} must be ${expected}, got ${got}` });
  }
}

/**
 * A node answered that it belongs to another cluster than the one this
 * client names: the cluster file (or the endpoints) point at the wrong
 * cluster. The node refused the call, so it applied nothing; a write retried
 * earlier through a node of the right cluster may still have taken effect.
 */
export class WrongClusterError extends ShardpaxError {
  override readonly name = 'WrongClusterError';
  readonly code = 'WRONG_CLUSTER';
  constructor(
    message: string,
    readonly mayHaveTakenEffect: boolean,
    /** The cluster the answering node belongs to. */
    readonly nodeClusterId: string,
  ) {
    super(message);
  }
}

/**
 * The shard master refused a join, leave, move or query (an unknown group, a
 * shard out of range, a duplicate join, ...): it changed nothing. `code` says
 * which refusal (the wire's ShardMasterErrorCode without its prefix).
 */
export class ShardMasterError extends ShardpaxError {
  override readonly name = 'ShardMasterError';
  readonly mayHaveTakenEffect = false;
  constructor(
    readonly code: ShardMasterErrorCodeName,
    message: string,
  ) {
    super(message);
  }
}
