// How the `shardpax` command ends when it cannot do what was asked: one line
// on stderr that says what happened and what to do, and an exit code a
// script can act on.
import { ShardpaxError } from '../client/errors.js';

export const EXIT_FAILED = 1;
/** `get` found no value under the key. */
export const EXIT_NO_VALUE = 2;
/** A write got no definite answer: it may or may not have been applied. */
export const EXIT_OUTCOME_UNKNOWN = 3;

/** A failure the CLI explains itself (bad input, nothing reachable). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILED,
  ) {
    super(message);
  }
}

/** The stderr line and exit code for whatever a command failed with. */
export function failure(err: unknown): { readonly message: string; readonly exitCode: number } {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof CliError) return { message, exitCode: err.exitCode };
  if (err instanceof ShardpaxError && err.mayHaveTakenEffect) {
    return { message: `${message} (read the key to see whether it did)`, exitCode: EXIT_OUTCOME_UNKNOWN };
  }
  return { message, exitCode: EXIT_FAILED };
}
