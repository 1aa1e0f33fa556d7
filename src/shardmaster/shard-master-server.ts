// One server of the shard master's group, group 0 (DESIGN.md 2.3): the
// generic group server (src/paxos/group-server.ts) around the shard-master
// application. Its commands go through the same exactly-once client path as a
// KV group's: an AmoCommand's bytes are shard master command bytes (codec.ts).
import type { Env } from '../core/env.js';
import type { ConfigNum } from '../core/ids.js';
import type { StoredState } from '../core/storage.js';
import { type GroupMessage, type GroupObserver, GroupServer, type GroupServerConfig, type GroupTimer } from '../paxos/group-server.js';
import type { ShardConfig } from './config.js';
import { readConfig, readLatestNum } from './config-store.js';
import type { ShardMasterApplication } from './shard-master-application.js';

export class ShardMasterServer extends GroupServer {
  constructor(
    env: Env<GroupMessage, GroupTimer>,
    config: GroupServerConfig,
    private readonly application: ShardMasterApplication,
    stored: StoredState,
    observer: GroupObserver = {},
  ) {
    super(env, config, application, stored, observer);
  }

  /** Config `num` (the latest when left out) as this replica stores it, for tests and inspection: no round of Paxos, may be stale. */
  storedConfig(num?: ConfigNum): ShardConfig {
    const store = { get: (key: string) => this.peek(key) };
    return readConfig(store, num ?? readLatestNum(store), this.application.shards);
  }
}
