// The shard master (DESIGN.md 2.3; dslabs' ShardMaster): a deterministic
// application hosted on its own Paxos group. It keeps numbered configs, each
// made from the latest by one join, leave or move (hash-ring.ts), on disk
// through the store it is handed (config-store.ts): it holds no state of its
// own, so one instance serves any store, and a restart over the same store
// sees the same configs.
//
// Invariants:
// - every successful join, leave or move makes exactly config latest+1; the
//   configs before it never change;
// - a refused command (bad bytes, a bad id, a conflict with the latest config)
//   changes nothing and answers an error code;
// - `apply` and `query` never throw on any command bytes. They throw only on
//   a bug (AssertionError) or a damaged store (ShardMasterStorageError).
//
// Stored history is unbounded for now: a config of 64 shards is a few hundred
// bytes, and configs change only by operator command.
import type { Application, StateReader, StateStore } from '../core/application.js';
import { assert, assertNever } from '../core/assert.js';
import { type ConfigNum, type GroupId, type NodeId, parseNodeId, type ShardId } from '../core/ids.js';
import { decodeShardMasterCommand, encodeShardMasterResult } from './codec.js';
import { DEFAULT_SHARDS, MAX_GROUPS, type ShardConfig } from './config.js';
import { readConfig, readLatestNum, writeConfig } from './config-store.js';
import { HashRing } from './hash-ring.js';
import { type ShardMasterCommand, ShardMasterInputError, type ShardMasterResult } from './messages.js';
import { validateCommand } from './validate.js';
import { loadXxHash64 } from './xxhash64.js';

type Refusal = Extract<ShardMasterResult, { kind: 'error' }>;

export class ShardMasterApplication implements Application {
  /** A shard master for a cluster of `shards` shards (fixed at cluster creation; check it with shardCountProblem). */
  static async load(shards: number = DEFAULT_SHARDS): Promise<ShardMasterApplication> {
    return new ShardMasterApplication(new HashRing(await loadXxHash64(), shards));
  }

  constructor(private readonly ring: HashRing) {}

  get shards(): number {
    return this.ring.shards;
  }

  apply(command: Uint8Array, store: StateStore): Uint8Array {
    return encodeShardMasterResult(this.run(command, store));
  }

  query(command: Uint8Array, store: StateReader): Uint8Array {
    const c = this.checked(command);
    if (c.kind === 'error') return encodeShardMasterResult(c);
    if (c.kind !== 'query') {
      return encodeShardMasterResult(refuse('MALFORMED_COMMAND', `a ${c.kind} is not a read; submit it as a command`));
    }
    return encodeShardMasterResult(this.answer(c.num, store));
  }

  private run(command: Uint8Array, store: StateStore): ShardMasterResult {
    const c = this.checked(command);
    if (c.kind === 'error') return c;
    switch (c.kind) {
      case 'query':
        return this.answer(c.num, store);
      case 'join':
        return this.join(c.group, c.servers, store);
      case 'leave':
        return this.leave(c.group, store);
      case 'move':
        return this.move(c.shard, c.group, store);
      default:
        return assertNever(c, 'ShardMasterCommand');
    }
  }

  private answer(num: ConfigNum | undefined, store: StateReader): ShardMasterResult {
    const latest = readLatestNum(store);
    if (num !== undefined && num > latest) {
      return refuse('NO_SUCH_CONFIG', `config ${num} does not exist; the latest is ${latest}`);
    }
    return { kind: 'config', config: readConfig(store, num ?? latest, this.shards) };
  }

  private join(group: GroupId, servers: readonly string[], store: StateStore): ShardMasterResult {
    const latest = this.latest(store);
    if (latest.groups.has(group)) {
      const why = `group ${group} already joined (config ${latest.num}); to change its servers, leave first`;
      return refuse('GROUP_ALREADY_JOINED', why);
    }
    if (latest.groups.size >= MAX_GROUPS) {
      return refuse('TOO_MANY_GROUPS', `config ${latest.num} holds ${latest.groups.size} groups, the most allowed`);
    }
    return this.commit(this.ring.join(latest, group, servers.map(checkedNodeId)), store);
  }

  private leave(group: GroupId, store: StateStore): ShardMasterResult {
    const latest = this.latest(store);
    if (!latest.groups.has(group)) return unknownGroup(group, latest);
    if (latest.groups.size === 1) {
      // Its shards would be owned by nobody: frozen where they are, and a later first join would serve them empty.
      return refuse('LAST_GROUP', `group ${group} is the only group in config ${latest.num}; join another before it leaves`);
    }
    return this.commit(this.ring.leave(latest, group), store);
  }

  private move(shard: ShardId, group: GroupId, store: StateStore): ShardMasterResult {
    const latest = this.latest(store);
    if (!latest.groups.has(group)) return unknownGroup(group, latest);
    if (latest.shards[shard] === group) {
      return refuse('ALREADY_OWNER', `shard ${shard} is already at group ${group} (config ${latest.num})`);
    }
    return this.commit(this.ring.move(latest, shard, group), store);
  }

  private latest(store: StateReader): ShardConfig {
    return readConfig(store, readLatestNum(store), this.shards);
  }

  private commit(next: ShardConfig, store: StateStore): ShardMasterResult {
    writeConfig(store, next);
    return { kind: 'done', num: next.num };
  }

  /** Decodes and checks what needs no config: bad input becomes an error result, never a throw. */
  private checked(bytes: Uint8Array): ShardMasterCommand | Refusal {
    let command: ShardMasterCommand;
    try {
      command = decodeShardMasterCommand(bytes);
    } catch (e) {
      if (e instanceof ShardMasterInputError) return refuse(e.code, e.message);
      throw e; // anything else is a bug in this code, not in the input
    }
    const violation = validateCommand(command, this.shards);
    if (violation !== undefined) return refuse(violation.code, violation.message);
    return command;
  }
}

function refuse(code: Refusal['code'], message: string): Refusal {
  return { kind: 'error', code, message };
}

function unknownGroup(group: GroupId, latest: ShardConfig): Refusal {
  return refuse('UNKNOWN_GROUP', `group ${group} is not in config ${latest.num}`);
}

/** validateCommand has checked every server. */
function checkedNodeId(s: string): NodeId {
  const id = parseNodeId(s);
  assert(id !== undefined, `unchecked server ${s}`);
  return id;
}
