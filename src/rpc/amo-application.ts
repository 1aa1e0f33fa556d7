// At-most-once wrapper (DESIGN.md 2.1; dslabs' AMOApplication). Wraps any
// deterministic application; lives inside the replicated state, so every
// replica deduplicates identically. Clients retry until answered, which turns
// at-most-once into exactly-once.
//
// Embeddable: one table per shard (DESIGN.md 2.4). The wrapper holds no state
// of its own: the table lives in the stores it is handed on each call, read
// and written through them (getSync over the step's overlay, DESIGN.md 3). A
// KV group keeps one table per shard, under the shard's own key prefix, so
// the table moves with the shard's data as one range; memory stays bounded
// however many shards and sessions there are.
//
// Layout of the sessions store: `m` the counters (AmoMeta); `s/<id>` a session
// record; `n/<nonce>` the live session a registration nonce opened; `a/<t>`
// the session last active at command count t (each command touches at most
// one session, so each t names at most one). Expiry walks `a/` upward from a
// stored cursor: each count is visited once in the table's life, so the walk
// costs O(1) reads per command amortized, with no range scans.
//
// Invariants:
// - a (session, seq) is applied to the inner application at most once;
// - a registration nonce opens at most one live session (retries get it again);
// - every seq of a live session below `ackedBelow` was applied (the client
//   only acknowledges results it holds); a seq in [ackedBelow, nextSeq) was
//   applied iff its result is stored;
// - sessions expire deterministically, by count of applied commands (never
//   wall clock), and the table holds at most `maxSessions`.
import type { Application, StateReader, StateStore } from '../core/application.js';
import { assert, assertNever } from '../core/assert.js';
import { type Seq, type SessionId, seq, sessionId } from '../core/ids.js';
import * as wire from '../gen/shardpax/v1/session.js';
import type { AmoCommand, AmoResult } from './messages.js';

export interface AmoOptions {
  /** Most sessions kept; registering one more expires the least recently active. */
  readonly maxSessions: number;
  /** A session idle for this many applied commands expires. */
  readonly sessionTtlCommands: number;
  /** Most requests a session may have unacknowledged; also bounds its cached results. */
  readonly maxWindow: number;
}

export const DEFAULT_AMO_OPTIONS: AmoOptions = {
  maxSessions: 10_000,
  sessionTtlCommands: 1_000_000,
  maxWindow: 1024,
};

/** Where one table keeps what it keeps (one set per shard). */
export interface AmoStores {
  /** Session records, their indexes and the counters. */
  readonly sessions: StateStore;
  /** Cached results. */
  readonly results: StateStore;
  /** The inner application's state. */
  readonly app: StateStore;
}

interface SessionState {
  readonly nonce: number;
  ackedBelow: Seq;
  lastActive: number;
  nextSeq: Seq;
}

interface Meta {
  /** Commands applied so far: the clock sessions expire by. */
  applied: number;
  nextSession: number;
  /** Live sessions. */
  sessions: number;
  /** No session was last active before this count: where the expiry walk resumes. */
  oldestActive: number;
}

/** Key of the counters record in the sessions store. */
export const AMO_META_KEY = 'm';
const SESSION_PREFIX = 's/';

export class AmoApplication {
  constructor(
    private readonly inner: Application,
    private readonly options: AmoOptions = DEFAULT_AMO_OPTIONS,
  ) {
    assert(options.maxSessions > 0 && options.sessionTtlCommands > 0 && options.maxWindow > 0);
  }

  apply(command: AmoCommand, stores: AmoStores): AmoResult {
    const meta = readMeta(stores.sessions);
    meta.applied += 1;
    this.expireIdle(meta, stores);
    let result: AmoResult;
    switch (command.kind) {
      case 'register':
        result = this.register(command.nonce, meta, stores);
        break;
      case 'request':
        result = this.request(command, meta, stores);
        break;
      case 'read':
        result = { kind: 'read', id: command.id, result: this.inner.query(command.command, stores.app) };
        break;
      default:
        return assertNever(command, 'AmoCommand');
    }
    stores.sessions.put(AMO_META_KEY, wire.AmoMeta.encode(meta).finish());
    return result;
  }

  /** Whether this (session, seq) was already applied: replicas answer such duplicates without the log. */
  cachedResult(session: SessionId, s: Seq, stores: Pick<AmoStores, 'sessions' | 'results'>): Uint8Array | undefined {
    const state = readSession(stores.sessions, session);
    if (state === undefined || s < state.ackedBelow || s >= state.nextSeq) return undefined;
    return stores.results.get(resultKey(session, s));
  }

  sessionCount(sessions: StateReader): number {
    return readMeta(sessions).sessions;
  }

  /** Checks the table's counters (the records themselves are checked as they are read). */
  checkInvariants(sessions: StateReader): void {
    const meta = readMeta(sessions);
    assert(meta.sessions >= 0 && meta.sessions <= this.options.maxSessions, 'too many sessions');
    assert(meta.oldestActive <= meta.applied + 1, 'the expiry cursor ran past the clock');
  }

  private register(nonce: number, meta: Meta, stores: AmoStores): AmoResult {
    const existing = stores.sessions.get(nonceKey(nonce));
    if (existing !== undefined) return { kind: 'registered', nonce, session: decodeId(existing) };
    const id = sessionId(meta.nextSession++);
    const state: SessionState = { nonce, ackedBelow: seq(0), lastActive: meta.applied, nextSeq: seq(0) };
    writeSession(stores.sessions, id, state);
    stores.sessions.put(nonceKey(nonce), encodeId(id));
    stores.sessions.put(activeKey(meta.applied), encodeId(id));
    meta.sessions += 1;
    while (meta.sessions > this.options.maxSessions) this.evictOldest(meta, stores);
    return { kind: 'registered', nonce, session: id };
  }

  private request(c: Extract<AmoCommand, { kind: 'request' }>, meta: Meta, stores: AmoStores): AmoResult {
    const state = readSession(stores.sessions, c.session);
    if (state === undefined) return { kind: 'expired', session: c.session, seq: c.seq };
    this.touch(c.session, state, meta, stores);
    this.forgetAcknowledged(c.session, state, c.ackedBelow, stores);
    let result: AmoResult;
    // Below ackedBelow the client has its result already; past the window it broke the protocol.
    if (c.seq < state.ackedBelow || c.seq >= state.ackedBelow + this.options.maxWindow) {
      result = { kind: 'expired', session: c.session, seq: c.seq };
    } else {
      const key = resultKey(c.session, c.seq);
      let bytes = c.seq < state.nextSeq ? stores.results.get(key) : undefined;
      if (bytes === undefined) {
        bytes = this.inner.apply(c.command, stores.app);
        stores.results.put(key, bytes);
        if (c.seq >= state.nextSeq) state.nextSeq = seq(c.seq + 1);
      }
      result = { kind: 'result', session: c.session, seq: c.seq, result: bytes };
    }
    assert(state.nextSeq <= state.ackedBelow + this.options.maxWindow || state.nextSeq === state.ackedBelow, 'results past the window');
    writeSession(stores.sessions, c.session, state);
    return result;
  }

  /** Drops the results the client holds: at most `maxWindow` keys, since results live only inside the window. */
  private forgetAcknowledged(id: SessionId, state: SessionState, ackedBelow: Seq, stores: AmoStores): void {
    if (ackedBelow <= state.ackedBelow) return; // a delayed duplicate carries an older mark
    const end = Math.min(ackedBelow, state.nextSeq);
    for (let s = state.ackedBelow; s < end; s++) stores.results.del(resultKey(id, seq(s)));
    state.ackedBelow = ackedBelow;
    if (state.nextSeq < ackedBelow) state.nextSeq = ackedBelow;
  }

  private touch(id: SessionId, state: SessionState, meta: Meta, stores: AmoStores): void {
    stores.sessions.del(activeKey(state.lastActive));
    state.lastActive = meta.applied;
    stores.sessions.put(activeKey(state.lastActive), encodeId(id));
  }

  private expireIdle(meta: Meta, stores: AmoStores): void {
    while (meta.applied - meta.oldestActive > this.options.sessionTtlCommands) {
      const id = stores.sessions.get(activeKey(meta.oldestActive));
      meta.oldestActive += 1;
      if (id !== undefined) this.forget(decodeId(id), meta, stores);
    }
  }

  private evictOldest(meta: Meta, stores: AmoStores): void {
    for (;;) {
      assert(meta.oldestActive <= meta.applied, 'no live session to evict');
      const id = stores.sessions.get(activeKey(meta.oldestActive));
      meta.oldestActive += 1;
      if (id !== undefined) return this.forget(decodeId(id), meta, stores);
    }
  }

  private forget(id: SessionId, meta: Meta, stores: AmoStores): void {
    const state = readSession(stores.sessions, id);
    assert(state !== undefined, `the activity index names session ${id}, which has no record`);
    for (let s = state.ackedBelow; s < state.nextSeq; s++) stores.results.del(resultKey(id, seq(s)));
    stores.sessions.del(sessionKey(id));
    stores.sessions.del(nonceKey(state.nonce));
    stores.sessions.del(activeKey(state.lastActive));
    meta.sessions -= 1;
  }
}

function readMeta(sessions: StateReader): Meta {
  const bytes = sessions.get(AMO_META_KEY);
  if (bytes === undefined) return { applied: 0, nextSession: 1, sessions: 0, oldestActive: 0 };
  const m = wire.AmoMeta.decode(bytes);
  return { applied: m.applied, nextSession: m.nextSession, sessions: m.sessions, oldestActive: m.oldestActive };
}

function readSession(sessions: StateReader, id: SessionId): SessionState | undefined {
  const bytes = sessions.get(sessionKey(id));
  if (bytes === undefined) return undefined;
  const r = wire.SessionRecord.decode(bytes);
  assert(r.session === id, 'session record filed under another key');
  return { nonce: r.nonce, ackedBelow: seq(r.ackedBelow), lastActive: r.lastActive, nextSeq: seq(r.nextSeq) };
}

function writeSession(sessions: StateStore, id: SessionId, s: SessionState): void {
  const record = { session: id, nonce: s.nonce, ackedBelow: s.ackedBelow, lastActive: s.lastActive, nextSeq: s.nextSeq };
  sessions.put(sessionKey(id), wire.SessionRecord.encode(record).finish());
}

function hex(n: number): string {
  return n.toString(16).padStart(14, '0');
}

function encodeId(id: SessionId): Uint8Array {
  return new TextEncoder().encode(hex(id));
}

function decodeId(bytes: Uint8Array): SessionId {
  return sessionId(Number.parseInt(new TextDecoder().decode(bytes), 16));
}

function sessionKey(id: SessionId): string {
  return SESSION_PREFIX + hex(id);
}

function nonceKey(nonce: number): string {
  return `n/${hex(nonce)}`;
}

function activeKey(count: number): string {
  return `a/${hex(count)}`;
}

function resultKey(id: SessionId, s: Seq): string {
  return `${hex(id)}/${hex(s)}`;
}
