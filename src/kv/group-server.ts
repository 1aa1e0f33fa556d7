// One server of a KV replica group (DESIGN.md 2.2, 2.4): the generic group
// server (src/paxos/group-server.ts) around the KV application.
import type { Env } from '../core/env.js';
import type { StoredState } from '../core/storage.js';
import { type GroupMessage, type GroupObserver, GroupServer, type GroupServerConfig, type GroupTimer } from '../paxos/group-server.js';
import { KvApplication } from './kv-application.js';

export class KvGroupServer extends GroupServer {
  constructor(env: Env<GroupMessage, GroupTimer>, config: GroupServerConfig, stored: StoredState, observer: GroupObserver = {}) {
    super(env, config, new KvApplication(), stored, observer);
  }
}
