// One server of the shard master's group, group 0 (DESIGN.md 2.3): the
// generic group server (src/paxos/group-server.ts) around the shard-master
// application. Its commands go through the same exactly-once client path as a
// KV group's: an AmoCommand's bytes are shard master command bytes (codec.ts).
import type { Env } from '../core/env.js';
import type { ConfigNum, NodeId } from '../core/ids.js';
import { WireError } from '../rpc/codec.js';
import { decodeConfigQuery, encodeConfigReply } from './codec.js';
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
    /** Every node of the cluster: a KV group's config query from any other is dropped. */
    private readonly clusterNodes: ReadonlySet<NodeId> = new Set(),
  ) {
    super(env, config, application, stored, observer);
  }

  /**
   * A KV group's leader asks for config `num` (src/kv/group-server.ts): answered from this replica's applied
   * state if it has that config (a stale replica's answer is still a real config), else not at all (it asks again).
   */
  protected override onHostMessage(from: NodeId, body: Uint8Array): void {
    if (!this.clusterNodes.has(from)) {
      this.paxos.invalid.count('group-message-from-stranger', `a group message from ${from}, no node of this cluster`);
      return;
    }
    let query;
    try {
      query = decodeConfigQuery(body);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.paxos.invalid.count('group-message-malformed', `a group message from ${from}: ${e.message}`);
      return;
    }
    const store = { get: (key: string) => this.peek(key) };
    if (query.num > readLatestNum(store)) return;
    const reply = encodeConfigReply(readConfig(store, query.num, this.application.shards));
    this.sendToGroup(query.replyGroup, from, { type: 'HostMessage', body: reply });
  }

  /** Config `num` (the latest when left out) as this replica stores it, for tests and inspection: no round of Paxos, may be stale. */
  storedConfig(num?: ConfigNum): ShardConfig {
    const store = { get: (key: string) => this.peek(key) };
    return readConfig(store, num ?? readLatestNum(store), this.application.shards);
  }
}
