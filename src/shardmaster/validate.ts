// Checks of a shard-master command that need no config: ranges of ids, a
// join's servers. Pure functions of the command and the shard count, so every
// replica refuses the same commands; the CLI and SDK can run the same checks
// before sending. Checks against the latest config (unknown group, duplicate
// join, ...) are the application's.
import { assertNever } from '../core/assert.js';
import { groupIdProblem, serversProblem } from './config.js';
import type { ShardMasterCommand, ShardMasterViolation } from './messages.js';

/** The first problem of `command` on a cluster of `shards` shards; undefined if none. */
export function validateCommand(command: ShardMasterCommand, shards: number): ShardMasterViolation | undefined {
  switch (command.kind) {
    case 'join':
      return badGroup(command.group) ?? badServers(command.servers);
    case 'leave':
      return badGroup(command.group);
    case 'move':
      if (command.shard >= shards) {
        const message = `shard ${command.shard} is out of range: shards are 0..${shards - 1}`;
        return { code: 'SHARD_OUT_OF_RANGE', message };
      }
      return badGroup(command.group);
    case 'query':
      return undefined;
    default:
      return assertNever(command, 'ShardMasterCommand');
  }
}

function badGroup(group: number): ShardMasterViolation | undefined {
  const problem = groupIdProblem(group);
  return problem === undefined ? undefined : { code: 'BAD_GROUP_ID', message: problem };
}

function badServers(servers: readonly string[]): ShardMasterViolation | undefined {
  const problem = serversProblem(servers);
  return problem === undefined ? undefined : { code: 'BAD_SERVERS', message: problem };
}
