// The SDK's admin client of the shard master (group 0; DESIGN.md 2.3):
// query a config, and join, leave and move, each through the exactly-once
// client path (a join retried after a lost answer is applied once). A refusal
// is a ShardMasterError carrying its code; the configs it answers are the
// shard master's own (src/shardmaster/config.ts).
import { type ConfigNum, configNum, groupId, shardId } from '../core/ids.js';
import { SHARD_MASTER_GROUP } from '../runtime/cluster-config.js';
import { decodeShardMasterResult, encodeShardMasterCommand } from '../shardmaster/codec.js';
import type { ShardConfig } from '../shardmaster/config.js';
import type { ShardMasterCommand } from '../shardmaster/messages.js';
import { checkConnectOptions } from './arguments.js';
import { InvalidArgumentError, ShardMasterError } from './errors.js';
import { type ConnectOptions, type GroupChoice, GroupClient } from './group-client.js';

const UINT32_MAX = 0xffff_ffff;

const SHARD_MASTER: GroupChoice = {
  fromFile: () => SHARD_MASTER_GROUP,
  fromStatuses: (statuses) => (statuses.some((s) => s.groups.some((g) => g.group === SHARD_MASTER_GROUP)) ? SHARD_MASTER_GROUP : undefined),
};

export class ShardMasterAdmin {
  private constructor(private readonly client: GroupClient) {}

  /** @internal use connectShardMaster() */
  static async open(options: ConnectOptions): Promise<ShardMasterAdmin> {
    return new ShardMasterAdmin(await GroupClient.connect(options, SHARD_MASTER));
  }

  /** Config `num`, or the latest when left out. */
  async query(num?: number): Promise<ShardConfig> {
    if (num !== undefined && (!Number.isSafeInteger(num) || num < 0)) {
      throw new InvalidArgumentError('query', 'num', 'a config number (a whole number from 0)', String(num));
    }
    const r = await this.run({ kind: 'query', num: num === undefined ? undefined : configNum(num) }, true);
    if (r.kind !== 'config') throw new Error(`the shard master answered a query with ${r.kind}`);
    return r.config;
  }

  /** Group `group` joins with `servers` (node ids) and takes its share of the shards; the new config's number. */
  join(group: number, servers: readonly string[]): Promise<ConfigNum> {
    return this.change({ kind: 'join', group: groupId(uint32('join', 'group', group)), servers: [...servers] });
  }

  /** Group `group` hands its shards to the others; the new config's number. */
  leave(group: number): Promise<ConfigNum> {
    return this.change({ kind: 'leave', group: groupId(uint32('leave', 'group', group)) });
  }

  /** Shard `shard` goes to group `group`, pinned there until the next join or leave; the new config's number. */
  move(shard: number, group: number): Promise<ConfigNum> {
    return this.change({ kind: 'move', shard: shardId(uint32('move', 'shard', shard)), group: groupId(uint32('move', 'group', group)) });
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private async change(command: ShardMasterCommand): Promise<ConfigNum> {
    const r = await this.run(command, false);
    if (r.kind !== 'done') throw new Error(`the shard master answered a ${command.kind} with ${r.kind}`);
    return r.num;
  }

  private async run(command: ShardMasterCommand, read: boolean) {
    const bytes = await this.client.submit({ command: encodeShardMasterCommand(command), read, what: describe(command) });
    const r = decodeShardMasterResult(bytes);
    if (r.kind === 'error') throw new ShardMasterError(r.code, r.message);
    return r;
  }
}

/** Connects to the shard master's group; rejects with ClusterUnreachableError when none of its servers answers. */
export async function connectShardMaster(options: ConnectOptions): Promise<ShardMasterAdmin> {
  checkConnectOptions(options);
  return ShardMasterAdmin.open(options);
}

/** `n` as it goes on the wire (a uint32); the shard master checks the ranges that matter and refuses with a code. */
function uint32(call: string, argument: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > UINT32_MAX) {
    throw new InvalidArgumentError(call, argument, 'a whole number from 0', typeof n === 'number' ? String(n) : typeof n);
  }
  return n;
}

function describe(c: ShardMasterCommand): string {
  switch (c.kind) {
    case 'query':
      return `query of config ${c.num ?? 'latest'}`;
    case 'join':
      return `join of group ${c.group}`;
    case 'leave':
      return `leave of group ${c.group}`;
    case 'move':
      return `move of shard ${c.shard} to group ${c.group}`;
  }
}
