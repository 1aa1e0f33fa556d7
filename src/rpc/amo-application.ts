// At-most-once wrapper (DESIGN.md 2.1; dslabs' AMOApplication). Wraps any
// deterministic application; lives inside the replicated state, so every
// replica deduplicates identically. Clients retry until answered, which turns
// at-most-once into exactly-once.
//
// Invariants:
// - a (session, seq) is applied to the inner application at most once;
// - a registration nonce opens at most one live session (retries get it again);
// - every seq of a live session below `ackedBelow` was applied (the client
//   only acknowledges results it holds), every seq at or above it was applied
//   iff its result is cached;
// - sessions expire deterministically, by count of applied commands (never
//   wall clock), and the table holds at most `maxSessions`.
import type { Application } from '../core/application.js';
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

interface SessionState {
  readonly nonce: number;
  ackedBelow: Seq;
  lastActive: number;
  readonly results: Map<Seq, Uint8Array>;
}

export class AmoApplication implements Application<AmoCommand, AmoResult> {
  private applied = 0;
  private nextSession = 1;
  /** Least recently active first: touching a session moves it to the end. */
  private sessions = new Map<SessionId, SessionState>();
  /** Registration nonce -> its live session. */
  private byNonce = new Map<number, SessionId>();

  constructor(
    private readonly inner: Application<Uint8Array, Uint8Array>,
    private readonly options: AmoOptions = DEFAULT_AMO_OPTIONS,
  ) {
    assert(options.maxSessions > 0 && options.sessionTtlCommands > 0 && options.maxWindow > 0);
  }

  apply(command: AmoCommand): AmoResult {
    this.applied += 1;
    this.expireIdle();
    switch (command.kind) {
      case 'register':
        return this.register(command.nonce);
      case 'request':
        return this.request(command);
      default:
        return assertNever(command, 'AmoCommand');
    }
  }

  /** Whether this (session, seq) was already applied: replicas answer such duplicates without the log. */
  cachedResult(session: SessionId, s: Seq): Uint8Array | undefined {
    return this.sessions.get(session)?.results.get(s);
  }

  sessionCount(): number {
    return this.sessions.size;
  }

  private register(nonce: number): AmoResult {
    const existing = this.byNonce.get(nonce);
    if (existing !== undefined) return { kind: 'registered', nonce, session: existing };
    const id = sessionId(this.nextSession++);
    this.sessions.set(id, { nonce, ackedBelow: seq(0), lastActive: this.applied, results: new Map() });
    this.byNonce.set(nonce, id);
    while (this.sessions.size > this.options.maxSessions) this.evictOldest();
    return { kind: 'registered', nonce, session: id };
  }

  private request(c: Extract<AmoCommand, { kind: 'request' }>): AmoResult {
    const state = this.sessions.get(c.session);
    if (state === undefined) return { kind: 'expired', session: c.session, seq: c.seq };
    this.touch(c.session, state);
    this.forgetAcknowledged(state, c.ackedBelow);
    // Below ackedBelow the client has its result already; past the window it broke the protocol.
    if (c.seq < state.ackedBelow || c.seq >= state.ackedBelow + this.options.maxWindow) {
      return { kind: 'expired', session: c.session, seq: c.seq };
    }
    let result = state.results.get(c.seq);
    if (result === undefined) {
      result = this.inner.apply(c.command);
      state.results.set(c.seq, result);
    }
    return { kind: 'result', session: c.session, seq: c.seq, result };
  }

  private forgetAcknowledged(state: SessionState, ackedBelow: Seq): void {
    if (ackedBelow <= state.ackedBelow) return; // a delayed duplicate carries an older mark
    for (const s of state.results.keys()) if (s < ackedBelow) state.results.delete(s);
    state.ackedBelow = ackedBelow;
  }

  private touch(id: SessionId, state: SessionState): void {
    state.lastActive = this.applied;
    this.sessions.delete(id);
    this.sessions.set(id, state);
  }

  private expireIdle(): void {
    for (const [id, state] of this.sessions) {
      if (this.applied - state.lastActive <= this.options.sessionTtlCommands) return;
      this.forget(id, state);
    }
  }

  private evictOldest(): void {
    const oldest = this.sessions.entries().next();
    assert(!oldest.done);
    this.forget(...oldest.value);
  }

  private forget(id: SessionId, state: SessionState): void {
    this.sessions.delete(id);
    this.byNonce.delete(state.nonce);
  }

  snapshot(): Uint8Array {
    const sessions: wire.SessionState[] = [];
    for (const [id, s] of this.sessions) {
      sessions.push({
        session: id,
        nonce: s.nonce,
        ackedBelow: s.ackedBelow,
        lastActive: s.lastActive,
        results: [...s.results].map(([k, v]) => ({ seq: k, result: v })),
      });
    }
    return wire.AmoSnapshot.encode({
      applied: this.applied,
      nextSession: this.nextSession,
      sessions,
      application: this.inner.snapshot(),
    }).finish();
  }

  restore(snapshot: Uint8Array): void {
    const w = wire.AmoSnapshot.decode(snapshot);
    this.applied = w.applied;
    this.nextSession = w.nextSession;
    this.sessions = new Map();
    this.byNonce = new Map();
    for (const s of w.sessions) {
      this.byNonce.set(s.nonce, sessionId(s.session));
      this.sessions.set(sessionId(s.session), {
        nonce: s.nonce,
        ackedBelow: seq(s.ackedBelow),
        lastActive: s.lastActive,
        results: new Map(s.results.map((r) => [seq(r.seq), r.result])),
      });
    }
    this.inner.restore(w.application);
  }
}
