// At-most-once wrapper (DESIGN.md 2.1; dslabs' AMOApplication). Wraps any
// deterministic application; lives inside the replicated state, so every
// replica deduplicates identically. Clients retry until answered, which turns
// at-most-once into exactly-once.
//
// Storage (DESIGN.md 3): session records and the wrapper's counters are few
// and small (at most `maxSessions`), so they are kept in memory and written
// through to their own small space, which a restarting replica reads whole.
// Cached results live on disk only, next to the application's state. Reads
// (`read` commands) have no place in the table at all: a retried read reads
// again.
//
// Invariants:
// - a (session, seq) is applied to the inner application at most once;
// - a registration nonce opens at most one live session (retries get it again);
// - every seq of a live session below `ackedBelow` was applied (the client
//   only acknowledges results it holds); a seq in [ackedBelow, nextSeq) was
//   applied iff its result is stored;
// - sessions expire deterministically, by count of applied commands (never
//   wall clock), and the table holds at most `maxSessions`.
import type { Application, StateStore } from '../core/application.js';
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

/** Where the wrapper keeps what it keeps. */
export interface AmoStores {
  /** Small: session records and counters; read whole at start (`AmoApplication.load`). */
  readonly sessions: StateStore;
  /** Cached results, under RESULT_PREFIX. */
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

/** Key of the counters record in the sessions store; session records are under their hex id. */
export const AMO_META_KEY = 'meta';
const SESSION_PREFIX = 's/';

export class AmoApplication {
  private applied = 0;
  private nextSession = 1;
  /** Least recently active first: touching a session moves it to the end. */
  private sessions = new Map<SessionId, SessionState>();
  /** Registration nonce -> its live session. */
  private byNonce = new Map<number, SessionId>();
  /** Sessions changed since the last flush(): their records are written once per flush, not per command. */
  private readonly dirty = new Set<SessionId>();
  private metaDirty = false;

  constructor(
    private readonly inner: Application,
    private readonly options: AmoOptions = DEFAULT_AMO_OPTIONS,
  ) {
    assert(options.maxSessions > 0 && options.sessionTtlCommands > 0 && options.maxWindow > 0);
  }

  /** Rebuilds the table from the sessions store's records (at start, or after a state transfer). */
  load(records: Iterable<readonly [string, Uint8Array]>): void {
    this.applied = 0;
    this.nextSession = 1;
    const loaded: Array<[SessionId, SessionState]> = [];
    for (const [key, bytes] of records) {
      if (key === AMO_META_KEY) {
        const m = wire.AmoMeta.decode(bytes);
        this.applied = m.applied;
        this.nextSession = m.nextSession;
        continue;
      }
      assert(key.startsWith(SESSION_PREFIX), `unexpected key ${JSON.stringify(key)} in the session table`);
      const r = wire.SessionRecord.decode(bytes);
      assert(sessionKey(sessionId(r.session)) === key, 'session record filed under another key');
      loaded.push([
        sessionId(r.session),
        { nonce: r.nonce, ackedBelow: seq(r.ackedBelow), lastActive: r.lastActive, nextSeq: seq(r.nextSeq) },
      ]);
    }
    loaded.sort(([, a], [, b]) => a.lastActive - b.lastActive);
    this.sessions = new Map(loaded);
    this.byNonce = new Map(loaded.map(([id, s]) => [s.nonce, id]));
    this.dirty.clear();
    this.metaDirty = false;
  }

  apply(command: AmoCommand, stores: AmoStores): AmoResult {
    this.applied += 1;
    this.expireIdle(stores);
    let result: AmoResult;
    switch (command.kind) {
      case 'register':
        result = this.register(command.nonce, stores);
        break;
      case 'request':
        result = this.request(command, stores);
        break;
      case 'read':
        result = { kind: 'read', id: command.id, result: this.inner.query(command.command, stores.app) };
        break;
      default:
        return assertNever(command, 'AmoCommand');
    }
    this.metaDirty = true;
    return result;
  }

  /**
   * Writes the records that apply() changed. The host calls it after each
   * decided slot, in the same step, so the records land with the state writes.
   */
  flush(stores: AmoStores): void {
    for (const id of this.dirty) {
      const s = this.sessions.get(id);
      assert(s !== undefined, 'a dirty session that is gone');
      stores.sessions.put(sessionKey(id), encodeRecord(id, s));
    }
    this.dirty.clear();
    if (this.metaDirty) {
      stores.sessions.put(AMO_META_KEY, wire.AmoMeta.encode({ applied: this.applied, nextSession: this.nextSession }).finish());
      this.metaDirty = false;
    }
  }

  /** Whether this (session, seq) was already applied: replicas answer such duplicates without the log. */
  cachedResult(session: SessionId, s: Seq, results: StateStore): Uint8Array | undefined {
    const state = this.sessions.get(session);
    if (state === undefined || s < state.ackedBelow || s >= state.nextSeq) return undefined;
    return results.get(resultKey(session, s));
  }

  sessionCount(): number {
    return this.sessions.size;
  }

  checkInvariants(): void {
    assert(this.sessions.size <= this.options.maxSessions, 'too many sessions');
    assert(this.byNonce.size === this.sessions.size, 'nonce index out of step with the sessions');
    let last = -1;
    for (const [id, s] of this.sessions) {
      assert(s.lastActive >= last, 'sessions out of activity order');
      last = s.lastActive;
      assert(this.byNonce.get(s.nonce) === id, 'nonce index points elsewhere');
      assert(s.nextSeq <= s.ackedBelow + this.options.maxWindow || s.nextSeq === s.ackedBelow, 'results past the window');
    }
  }

  private register(nonce: number, stores: AmoStores): AmoResult {
    const existing = this.byNonce.get(nonce);
    if (existing !== undefined) return { kind: 'registered', nonce, session: existing };
    const id = sessionId(this.nextSession++);
    const state: SessionState = { nonce, ackedBelow: seq(0), lastActive: this.applied, nextSeq: seq(0) };
    this.sessions.set(id, state);
    this.byNonce.set(nonce, id);
    this.dirty.add(id);
    while (this.sessions.size > this.options.maxSessions) this.evictOldest(stores);
    return { kind: 'registered', nonce, session: id };
  }

  private request(c: Extract<AmoCommand, { kind: 'request' }>, stores: AmoStores): AmoResult {
    const state = this.sessions.get(c.session);
    if (state === undefined) return { kind: 'expired', session: c.session, seq: c.seq };
    this.touch(c.session, state);
    this.forgetAcknowledged(c.session, state, c.ackedBelow, stores);
    // Below ackedBelow the client has its result already; past the window it broke the protocol.
    if (c.seq < state.ackedBelow || c.seq >= state.ackedBelow + this.options.maxWindow) {
      this.dirty.add(c.session);
      return { kind: 'expired', session: c.session, seq: c.seq };
    }
    const key = resultKey(c.session, c.seq);
    let result = c.seq < state.nextSeq ? stores.results.get(key) : undefined;
    if (result === undefined) {
      result = this.inner.apply(c.command, stores.app);
      stores.results.put(key, result);
      if (c.seq >= state.nextSeq) state.nextSeq = seq(c.seq + 1);
    }
    this.dirty.add(c.session);
    return { kind: 'result', session: c.session, seq: c.seq, result };
  }

  /** Drops the results the client holds: at most `maxWindow` keys, since results live only inside the window. */
  private forgetAcknowledged(id: SessionId, state: SessionState, ackedBelow: Seq, stores: AmoStores): void {
    if (ackedBelow <= state.ackedBelow) return; // a delayed duplicate carries an older mark
    const end = Math.min(ackedBelow, state.nextSeq);
    for (let s = state.ackedBelow; s < end; s++) stores.results.del(resultKey(id, seq(s)));
    state.ackedBelow = ackedBelow;
    if (state.nextSeq < ackedBelow) state.nextSeq = ackedBelow;
  }

  private touch(id: SessionId, state: SessionState): void {
    state.lastActive = this.applied;
    this.sessions.delete(id);
    this.sessions.set(id, state);
  }

  private expireIdle(stores: AmoStores): void {
    for (const [id, state] of this.sessions) {
      if (this.applied - state.lastActive <= this.options.sessionTtlCommands) return;
      this.forget(id, state, stores);
    }
  }

  private evictOldest(stores: AmoStores): void {
    const oldest = this.sessions.entries().next();
    assert(!oldest.done);
    this.forget(...oldest.value, stores);
  }

  private forget(id: SessionId, state: SessionState, stores: AmoStores): void {
    for (let s = state.ackedBelow; s < state.nextSeq; s++) stores.results.del(resultKey(id, seq(s)));
    stores.sessions.del(sessionKey(id));
    this.sessions.delete(id);
    this.byNonce.delete(state.nonce);
    this.dirty.delete(id);
  }
}

function encodeRecord(id: SessionId, s: SessionState): Uint8Array {
  return wire.SessionRecord.encode({
    session: id,
    nonce: s.nonce,
    ackedBelow: s.ackedBelow,
    lastActive: s.lastActive,
    nextSeq: s.nextSeq,
  }).finish();
}

function sessionKey(id: SessionId): string {
  return SESSION_PREFIX + id.toString(16).padStart(14, '0');
}

function resultKey(id: SessionId, s: Seq): string {
  return `${id.toString(16).padStart(14, '0')}/${s.toString(16).padStart(14, '0')}`;
}
