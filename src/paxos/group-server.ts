// One server of a replica group (DESIGN.md 2.2): Paxos hosting an
// application as a sub-node (dslabs' style), generic over that application:
// the KV groups (src/kv) and the shard master's group (src/shardmaster) are
// both this server around their own Application. It admits client commands
// (answering duplicates from the exactly-once table without a round of
// Paxos), proposes them as opaque bytes, applies each decided slot to the
// exactly-once wrapper around the application, and answers the clients
// waiting on this server. State lives on disk, in STATE_SPACE, laid out per
// shard: shard s's application state, exactly-once table and cached results
// all lie under `k/<s>/`, one contiguous range that can move as a whole. A
// group that is not sharded (the shard master's) keeps everything in shard 0.
//
// Invariants: `waiting` holds at most `maxWaiting` clients; a decided command
// that does not decode, or names a shard out of range, is skipped identically
// on every replica.
import type { Application, StateStore } from '../core/application.js';
import { assert, assertNever } from '../core/assert.js';
import type { Env, ProtocolNode } from '../core/env.js';
import { type ConfigNum, type GroupId, type NodeId, type ShardId, type Slot, shardId } from '../core/ids.js';
import { mark } from '../core/marks.js';
import { del, put, type ScanRequest, type ScanResult, type StoredState } from '../core/storage.js';
import { AmoApplication, type AmoOptions, type AmoStores, DEFAULT_AMO_OPTIONS } from '../rpc/amo-application.js';
import { amoCommandFromWire, amoCommandToWire, WireError, wireShard } from '../rpc/codec.js';
import { GroupLogEntry } from '../gen/shardpax/v1/peer.js';
import type { AmoCommand, AmoResult, RpcMessage, RpcTimer, ShardedCommand } from '../rpc/messages.js';
import type { Batch, PaxosMessage, PaxosTimer } from './messages.js';
import { PAXOS_PRELOAD, PAXOS_SPACES, type PaxosObserver, PaxosServer, type PaxosServerConfig } from './paxos-server.js';

/** The hosting application's own message to another group, opaque here (groups.proto). */
export type HostMessage = { readonly type: 'HostMessage'; readonly body: Uint8Array };
export type GroupMessage = PaxosMessage | RpcMessage | HostMessage;
export type GroupTimer = PaxosTimer | RpcTimer;

export const STATE_SPACE = 'state';
/** A command a client retransmits is proposed again only this long after the last time. */
const REPROPOSE_AFTER_MS = 2_000;
/** Every space a group server keeps, and those it reads whole at start. */
export const GROUP_SPACES = [...PAXOS_SPACES, STATE_SPACE] as const;
export const GROUP_PRELOAD = [...PAXOS_PRELOAD] as const;

/** The prefix of shard `s`'s range in STATE_SPACE: everything the shard holds, and nothing else. */
export function shardPrefix(s: ShardId): string {
  return `k/${String(s).padStart(4, '0')}/`;
}

export interface GroupServerConfig extends PaxosServerConfig {
  /** Clients waiting for an answer, at most (the oldest are forgotten: they retry). */
  readonly maxWaiting: number;
  readonly amo: AmoOptions;
  /** Shards 0..shards-1 have state here; a command for another is dropped at the door (1: not sharded). */
  readonly shards?: number;
}

/** What tests watch a group server do. */
export interface GroupObserver extends PaxosObserver {
  /** This server answered a client with the state after applying slot `s`. */
  answered?(server: NodeId, s: Slot): void;
}

export const DEFAULT_GROUP_TUNING = { maxWaiting: 100_000, amo: DEFAULT_AMO_OPTIONS } as const;

export class GroupServer implements ProtocolNode<GroupMessage, GroupTimer> {
  readonly paxos: PaxosServer;
  readonly amo: AmoApplication;
  /** Command key -> the client to answer when it applies, and when this server last proposed it. */
  private readonly waiting = new Map<string, { readonly client: NodeId; readonly proposedAt: number }>();
  private readonly members: ReadonlySet<NodeId>;

  constructor(
    private readonly env: Env<GroupMessage, GroupTimer>,
    private readonly config: GroupServerConfig,
    application: Application,
    stored: StoredState,
    private readonly observer: GroupObserver = {},
  ) {
    this.members = new Set(config.members);
    this.amo = new AmoApplication(application, config.amo);
    this.paxos = new PaxosServer(
      env,
      config,
      {
        apply: (s, batch) => this.applySlot(s, batch),
        stateSpaces: [{ name: STATE_SPACE, small: false }],
        restored: () => this.restored(),
      },
      stored,
      observer,
    );
  }

  /** The door for client messages; Paxos messages pass on to the Paxos server's door. */
  onMessage(from: NodeId, m: GroupMessage): void {
    switch (m.type) {
      case 'ClientCommand':
        // Clients reach a server through its gateway; a member relays commands in a Propose, never as a client.
        if (this.members.has(from)) {
          this.paxos.invalid.count('client-command-from-peer', `ClientCommand from member ${from}`);
          return;
        }
        if (m.shard >= (this.config.shards ?? 1)) {
          this.paxos.invalid.count('shard-out-of-range', `ClientCommand for shard ${m.shard} from ${from}`);
          return;
        }
        if (this.admit(from, m)) this.paxos.propose([encodeEntry({ kind: 'client', shard: m.shard, command: m.command })]);
        return;
      case 'ClientResult':
        this.paxos.invalid.count('client-result-at-server', `ClientResult from ${from}: servers are not clients`);
        return;
      case 'HostMessage':
        this.onHostMessage(from, m.body);
        return;
      default:
        this.paxos.onMessage(from, m);
    }
  }

  onTimer(timer: GroupTimer): void {
    if (timer.type === 'SessionRetry') return; // servers hold no client sessions
    this.paxos.onTimer(timer);
    if (timer.type === 'Tick') this.onTick();
  }

  onScanned(request: ScanRequest, result: ScanResult | undefined): void {
    if (!this.onHostScanned(request, result)) this.paxos.onScanned(request, result);
  }

  /** The value this replica's application stores under `key` in `shard`, for tests and inspection: no round of Paxos, may be stale. */
  peek(key: string, shard: ShardId = shardId(0)): Uint8Array | undefined {
    return this.stores(shard).app.get(key);
  }

  checkInvariants(): void {
    this.paxos.checkInvariants();
    assert(this.waiting.size <= this.config.maxWaiting, 'too many waiting clients');
  }

  /** Shard `s`'s exactly-once table, cached results and application state: all under its prefix. */
  protected stores(s: ShardId): AmoStores {
    const prefix = shardPrefix(s);
    return {
      sessions: this.store(STATE_SPACE, `${prefix}x/`),
      results: this.store(STATE_SPACE, `${prefix}r/`),
      app: this.store(STATE_SPACE, `${prefix}d/`),
    };
  }

  /** A state transfer replaced the stored state: a host that caches any of it reloads here. */
  protected restored(): void {}

  /**
   * Why this group does not serve `shard` now: the config number to answer WrongGroup with, or undefined if it
   * does. Asked at admission and again when applying (the answer may change in between: only the second decides).
   */
  protected refusal(_shard: ShardId): ConfigNum | undefined {
    return undefined;
  }

  /** Applies one of the host's own steps (proposed with proposeStep), identically on every replica. */
  protected applyStep(_step: Uint8Array): void {
    mark('group server skips a step it has no use for');
  }

  /** Proposes one of the host's own steps through the group's log. */
  protected proposeStep(step: Uint8Array): void {
    this.paxos.propose([encodeEntry({ kind: 'host', step })]);
  }

  /** A message from another group (validated by the host: it comes from the network). */
  protected onHostMessage(from: NodeId, _body: Uint8Array): void {
    this.paxos.invalid.count('host-message-unexpected', `a group message from ${from}, which this group does not take`);
  }

  /** Sends to the replica of another group at node `to`. */
  protected sendToGroup(group: GroupId, to: NodeId, message: GroupMessage): void {
    assert(this.env.sendToGroup !== undefined, 'this server has no env that reaches other groups');
    this.env.sendToGroup(group, to, message);
  }

  /** Every Paxos tick (tickMs). */
  protected onTick(): void {}

  /** A scan the host started completed; false if the scan was not the host's. */
  protected onHostScanned(_request: ScanRequest, _result: ScanResult | undefined): boolean {
    return false;
  }

  /** Answers a client: with the state after the step's writes, which go to disk first. */
  protected reply(to: NodeId, shard: ShardId, result: AmoResult): void {
    // An answer vouches for the state it came from: on disk first, so no restart serves an older one.
    this.env.syncBeforeSending();
    this.env.send(to, { type: 'ClientResult', shard, result });
  }

  /** Why `command` does not belong in `shard` (a key of another shard), or undefined if it does. */
  protected misrouted(_shard: ShardId, _command: AmoCommand): string | undefined {
    return undefined;
  }

  /** A client's command arrived here: remember whom to answer. True if it still needs proposing. */
  private admit(client: NodeId, { shard, command }: ShardedCommand): boolean {
    const wrong = this.misrouted(shard, command);
    if (wrong !== undefined) {
      // A client that hashes keys differently would scatter a key over shards: refused before it is stored.
      this.paxos.invalid.count('command-in-wrong-shard', `from ${client}: ${wrong}`);
      return false;
    }
    const refused = this.refusal(shard);
    if (refused !== undefined) {
      mark('group server refuses a shard it does not serve at admission');
      this.reply(client, shard, { kind: 'wrongGroup', shard, configNum: refused, refused: command });
      return false;
    }
    if (command.kind === 'request') {
      const cached = this.amo.cachedResult(command.session, command.seq, this.stores(shard));
      if (cached !== undefined) {
        mark('group server answers a duplicate from the table');
        this.reply(client, shard, { kind: 'result', session: command.session, seq: command.seq, result: cached });
        return false;
      }
    }
    const key = commandKey(shard, command);
    const now = this.env.now();
    const earlier = this.waiting.get(key);
    this.waiting.delete(key);
    // A client's retransmission of a command proposed a moment ago: answer that one, do not propose it again
    // (a large command proposed on every retry would crowd the log). Clock only paces, never decides safety.
    const fresh = earlier !== undefined && now - earlier.proposedAt < REPROPOSE_AFTER_MS;
    this.waiting.set(key, { client, proposedAt: fresh ? earlier.proposedAt : now });
    if (this.waiting.size > this.config.maxWaiting) {
      const oldest = this.waiting.keys().next();
      if (!oldest.done) this.waiting.delete(oldest.value);
    }
    if (fresh) mark('group server does not propose a retransmission again');
    return !fresh;
  }

  private applySlot(s: Slot, batch: Batch): void {
    for (const bytes of batch) {
      let entry: LogEntry;
      try {
        entry = decodeEntry(bytes);
      } catch {
        mark('group server skips a command that does not decode');
        continue;
      }
      if (entry.kind === 'host') {
        this.applyStep(entry.step);
        continue;
      }
      const { shard, command } = entry;
      if (shard >= (this.config.shards ?? 1)) continue; // only a faulty member proposes one: the door drops them
      const refused = this.refusal(shard);
      if (refused !== undefined) mark('group server refuses a shard it does not serve when applying');
      const result: AmoResult =
        refused === undefined
          ? this.amo.apply(command, this.stores(shard))
          : { kind: 'wrongGroup', shard, configNum: refused, refused: command };
      const key = commandKey(shard, command);
      const client = this.waiting.get(key)?.client;
      if (client === undefined) continue;
      this.waiting.delete(key);
      this.observer.answered?.(this.config.self, s);
      this.reply(client, shard, result);
    }
  }

  private store(name: string, prefix: string): StateStore {
    return {
      get: (key) => this.env.read(name, prefix + key),
      put: (key, value) => this.env.persistUnsynced(put(name, prefix + key, value)),
      del: (key) => this.env.persistUnsynced(del(name, prefix + key)),
    };
  }
}

/** Which waiting client a command answers. Session ids are per shard, so the shard is part of it. */
function commandKey(shard: ShardId, c: AmoCommand): string {
  switch (c.kind) {
    case 'register':
      return `${shard}r${c.nonce}`;
    case 'request':
      return `${shard}:${c.session}:${c.seq}`;
    case 'read':
      return `${shard}q${c.id}`;
    default:
      return assertNever(c, 'AmoCommand');
  }
}

/** What the log holds: a client's command for a shard, or one of the host's own steps. */
type LogEntry = { readonly kind: 'client'; readonly shard: ShardId; readonly command: AmoCommand } | { readonly kind: 'host'; readonly step: Uint8Array };

function encodeEntry(e: LogEntry): Uint8Array {
  const kind: GroupLogEntry['kind'] =
    e.kind === 'client' ? { $case: 'client', value: amoCommandToWire(e.command, e.shard) } : { $case: 'host', value: e.step };
  return GroupLogEntry.encode({ kind }).finish();
}

/** Throws on bytes that are no entry. */
function decodeEntry(bytes: Uint8Array): LogEntry {
  const k = GroupLogEntry.decode(bytes).kind;
  if (k === undefined) throw new WireError('a log entry without a kind');
  if (k.$case === 'host') return { kind: 'host', step: k.value };
  return { kind: 'client', shard: wireShard(k.value.shard), command: amoCommandFromWire(k.value) };
}
