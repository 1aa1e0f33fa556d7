// Routing by shard (DESIGN.md 2.4, 2.6): the client half of a sharded
// cluster, deterministic (it acts only through its env), so the SDK and the
// simulations run the same code. It loads the latest config from the shard
// master, sends each command to the group that owns its shard through that
// shard's own exactly-once session (a session lives in one shard's table and
// moves with it), and when a group answers WrongGroup it loads the latest
// config again and points the sessions of moved shards at their new owners.
// Commands stay in flight across a move (nothing was applied where they were
// refused), so exactly-once holds across groups and reconfigurations.
import { assert } from '../core/assert.js';
import type { Env } from '../core/env.js';
import { type GroupId, groupId, type Millis, millis, type NodeId, type ShardId, shardId } from '../core/ids.js';
import type { ScanRequest, StorageWrite } from '../core/storage.js';
import { ClientSession, type Outcome } from '../rpc/client-session.js';
import type { RpcMessage, RpcTimer } from '../rpc/messages.js';
import { decodeShardMasterResult, encodeShardMasterCommand } from '../shardmaster/codec.js';
import type { ShardConfig } from '../shardmaster/config.js';

export interface ShardRouterOptions {
  /** The shard master's servers (group 0). */
  readonly shardMaster: readonly NodeId[];
  readonly retryMs: Millis;
  /** Commands in flight per shard. */
  readonly window: number;
}

/** A message for, or from, the replica of `group` at a node (the node envelope, src/paxos/group-env.ts). */
export interface GroupTagged<M> {
  readonly group: GroupId;
  readonly message: M;
}

/** A timer of the router's sessions; the group is not used. */
export interface RouterTimer {
  readonly group: GroupId;
  readonly timer: RpcTimer;
}

const SHARD_MASTER = groupId(0);
/** Timer owner of the config session; shard s's session is s + 1; the router's own pacing timer is -1. */
const CONFIG_OWNER = 0;
const REFRESH_OWNER = -1;

interface Route {
  readonly session: ClientSession;
  group: GroupId;
}

interface Queued {
  readonly ticket: number;
  readonly command: Uint8Array;
  readonly read: boolean;
}

export class ShardRouter {
  private config: ShardConfig | undefined;
  private readonly configSession: ClientSession;
  private querying = false;
  private lastQueryAt = -Infinity;
  private refreshArmed = false;
  private readonly routes = new Map<ShardId, Route>();
  /** Commands waiting for the first config (or for their shard to have an owner), per shard. */
  private readonly waiting = new Map<ShardId, Queued[]>();
  /** (shard, session ticket) -> the router's ticket. */
  private readonly tickets = new Map<string, number>();
  private nextTicket = 0;

  constructor(
    private readonly env: Env<GroupTagged<RpcMessage>, RouterTimer>,
    private readonly options: ShardRouterOptions,
    private readonly onOutcome: (ticket: number, outcome: Outcome) => void,
  ) {
    const session = { servers: options.shardMaster, retryMs: options.retryMs, window: 1, timerOwner: CONFIG_OWNER, shard: shardId(0) };
    this.configSession = new ClientSession(groupTaggedEnv(this.env, () => SHARD_MASTER), session, (_t, o) => this.configLoaded(o));
  }

  /** The config routing follows, once loaded. */
  current(): ShardConfig | undefined {
    return this.config;
  }

  /** Queues a command for `shard`; returns the ticket its outcome will carry. */
  submit(shard: ShardId, command: Uint8Array, read: boolean): number {
    const ticket = this.nextTicket++;
    const route = this.route(shard);
    if (route === undefined) {
      const queue = this.waiting.get(shard) ?? [];
      queue.push({ ticket, command, read });
      this.waiting.set(shard, queue);
      this.refresh();
    } else {
      this.send(shard, route, { ticket, command, read });
    }
    return ticket;
  }

  /** Commands submitted and not yet completed. */
  outstanding(): number {
    let n = 0;
    for (const q of this.waiting.values()) n += q.length;
    for (const r of this.routes.values()) n += r.session.outstanding();
    return n;
  }

  onMessage(_from: NodeId, m: GroupTagged<RpcMessage>): void {
    const msg = m.message;
    if (msg.type !== 'ClientResult') return;
    if (m.group === SHARD_MASTER) this.configSession.onResult(msg.result);
    else this.routes.get(msg.shard)?.session.onResult(msg.result);
  }

  onTimer(t: RouterTimer): void {
    const owner = t.timer.owner;
    if (owner === REFRESH_OWNER) {
      this.refreshArmed = false;
      this.refresh();
    } else if (owner === CONFIG_OWNER) this.configSession.onTimer(t.timer);
    else this.routes.get(shardId(owner - 1))?.session.onTimer(t.timer);
  }

  /** Asks the shard master for the latest config, unless a question is out or was asked a moment ago. */
  private refresh(): void {
    const now = this.env.now();
    if (this.querying) return;
    if (now - this.lastQueryAt < this.options.retryMs) {
      // Asked a moment ago: ask again once the pause is over.
      if (!this.refreshArmed) {
        this.refreshArmed = true;
        const timer: RpcTimer = { type: 'SessionRetry', owner: REFRESH_OWNER };
        this.env.setTimer({ group: SHARD_MASTER, timer }, millis(this.lastQueryAt + this.options.retryMs - now));
      }
      return;
    }
    this.querying = true;
    this.lastQueryAt = now;
    this.configSession.read(encodeShardMasterCommand({ kind: 'query', num: undefined }));
  }

  private configLoaded(o: Outcome): void {
    this.querying = false;
    if (!o.ok) return; // reads never expire; a later WrongGroup asks again
    const r = decodeShardMasterResult(o.result);
    if (r.kind !== 'config') return;
    const next = r.config;
    if (this.config === undefined || next.num > this.config.num) this.follow(next);
    if (this.waiting.size > 0) this.refresh(); // shards with no owner yet: ask again
  }

  private follow(next: ShardConfig): void {
    this.config = next;
    for (const [shard, route] of this.routes) {
      const owner = next.shards[shard];
      if (owner === undefined || owner === route.group) continue;
      route.group = owner;
      route.session.retarget(this.servers(owner));
    }
    for (const [shard, queue] of [...this.waiting]) {
      const route = this.route(shard);
      if (route === undefined) continue;
      this.waiting.delete(shard);
      for (const q of queue) this.send(shard, route, q);
    }
  }

  /**
   * A group at a config we have not seen, or one that refuses a shard our config gives it (it has not caught up,
   * or the shard moved since): either way the latest config tells where to go.
   */
  private wrongGroup(): void {
    this.refresh();
  }

  private route(shard: ShardId): Route | undefined {
    const existing = this.routes.get(shard);
    if (existing !== undefined) return existing;
    const owner = this.config?.shards[shard];
    if (owner === undefined) return undefined;
    const route: Route = {
      group: owner,
      session: new ClientSession(
        groupTaggedEnv(this.env, () => route.group),
        { servers: this.servers(owner), retryMs: this.options.retryMs, window: this.options.window, timerOwner: shard + 1, shard },
        (t, o) => this.completed(shard, t, o),
        () => this.wrongGroup(),
      ),
    };
    this.routes.set(shard, route);
    return route;
  }

  private send(shard: ShardId, route: Route, q: Queued): void {
    const inner = q.read ? route.session.read(q.command) : route.session.submit(q.command);
    this.tickets.set(`${shard}:${inner}`, q.ticket);
  }

  private completed(shard: ShardId, inner: number, o: Outcome): void {
    const key = `${shard}:${inner}`;
    const ticket = this.tickets.get(key);
    assert(ticket !== undefined, `an outcome for an unknown ticket of shard ${shard}`);
    this.tickets.delete(key);
    this.onOutcome(ticket, o);
  }

  private servers(group: GroupId): readonly NodeId[] {
    const servers = this.config?.groups.get(group);
    assert(servers !== undefined && servers.length > 0, `config names group ${group} without servers`);
    return servers;
  }
}

/** An env for one session over a node's `env`: sends go to the group `group()` names at the time, timers come back by owner. */
export function groupTaggedEnv(env: Env<GroupTagged<RpcMessage>, RouterTimer>, group: () => GroupId): Env<RpcMessage, RpcTimer> {
  return {
    self: env.self,
    send: (to, message) => env.send(to, { group: group(), message }),
    sendNow: (to, message) => env.sendNow(to, { group: group(), message }),
    setTimer: (timer, afterMs) => env.setTimer({ group: SHARD_MASTER, timer }, afterMs),
    persist: (...writes: StorageWrite[]) => env.persist(...writes),
    persistUnsynced: (...writes: StorageWrite[]) => env.persistUnsynced(...writes),
    syncBeforeSending: () => env.syncBeforeSending(),
    read: (space, key) => env.read(space, key),
    openSnapshot: () => env.openSnapshot(),
    releaseSnapshot: (id) => env.releaseSnapshot(id),
    scan: (request: ScanRequest) => env.scan(request),
    now: () => env.now(),
    random: () => env.random(),
  };
}
