// Unit tests of the at-most-once wrapper and the client session, fed inputs directly.
import { describe, expect, it } from 'vitest';
import { ReadyCollector } from '../src/core/env.js';
import { millis, nodeId, type Seq, type SessionId, seq, sessionId } from '../src/core/ids.js';
import { AmoApplication } from '../src/rpc/amo-application.js';
import { ClientSession, type Outcome } from '../src/rpc/client-session.js';
import type { AmoResult, RpcMessage, RpcTimer } from '../src/rpc/messages.js';
import { Counter } from './support/counter.js';

const dec = new TextDecoder();

function registered(r: AmoResult): SessionId {
  if (r.kind !== 'registered') throw new Error(`expected registered, got ${r.kind}`);
  return r.session;
}

function req(session: SessionId, s: number, ackedBelow = 0) {
  return { kind: 'request' as const, session, seq: seq(s), ackedBelow: seq(ackedBelow), command: new Uint8Array([1]) };
}

function value(r: AmoResult): string {
  if (r.kind !== 'result') throw new Error(`expected result, got ${r.kind}`);
  return dec.decode(r.result);
}

describe('AmoApplication', () => {
  it('applies each (session, seq) once and answers duplicates from its cache', () => {
    const counter = new Counter();
    const amo = new AmoApplication(counter);
    const s = registered(amo.apply({ kind: 'register', nonce: 9 }));
    expect(value(amo.apply(req(s, 0)))).toBe('1');
    expect(value(amo.apply(req(s, 0)))).toBe('1');
    expect(value(amo.apply(req(s, 1)))).toBe('2');
    expect(value(amo.apply(req(s, 0)))).toBe('1');
    expect(counter.value).toBe(2);
  });

  it('a retried registration gets the same session, not a new one', () => {
    const amo = new AmoApplication(new Counter());
    const a = registered(amo.apply({ kind: 'register', nonce: 5 }));
    expect(registered(amo.apply({ kind: 'register', nonce: 5 }))).toBe(a);
    expect(registered(amo.apply({ kind: 'register', nonce: 6 }))).not.toBe(a);
    expect(amo.sessionCount()).toBe(2);
    const copy = new AmoApplication(new Counter());
    copy.restore(amo.snapshot());
    expect(registered(copy.apply({ kind: 'register', nonce: 5 }))).toBe(a);
  });

  it('forgets acknowledged results and refuses seqs below the mark', () => {
    const amo = new AmoApplication(new Counter());
    const s = registered(amo.apply({ kind: 'register', nonce: 1 }));
    amo.apply(req(s, 0));
    amo.apply(req(s, 1, 1));
    expect(amo.cachedResult(s, seq(0))).toBeUndefined();
    expect(amo.apply(req(s, 0)).kind).toBe('expired');
  });

  it('refuses a seq past the window instead of caching without bound', () => {
    const amo = new AmoApplication(new Counter(), { maxSessions: 10, sessionTtlCommands: 100, maxWindow: 4 });
    const s = registered(amo.apply({ kind: 'register', nonce: 1 }));
    expect(amo.apply(req(s, 4)).kind).toBe('expired');
    expect(amo.apply(req(s, 3)).kind).toBe('result');
  });

  it('expires idle sessions by applied-command count, deterministically', () => {
    const amo = new AmoApplication(new Counter(), { maxSessions: 10, sessionTtlCommands: 3, maxWindow: 8 });
    const idle = registered(amo.apply({ kind: 'register', nonce: 1 }));
    const busy = registered(amo.apply({ kind: 'register', nonce: 2 }));
    for (let i = 0; i < 4; i++) amo.apply(req(busy, i, i));
    expect(amo.apply(req(idle, 0)).kind).toBe('expired');
    expect(amo.apply(req(busy, 4, 4)).kind).toBe('result');
    expect(amo.sessionCount()).toBe(1);
  });

  it('keeps at most maxSessions, expiring the least recently active', () => {
    const amo = new AmoApplication(new Counter(), { maxSessions: 2, sessionTtlCommands: 1000, maxWindow: 8 });
    const a = registered(amo.apply({ kind: 'register', nonce: 1 }));
    const b = registered(amo.apply({ kind: 'register', nonce: 2 }));
    amo.apply(req(a, 0));
    registered(amo.apply({ kind: 'register', nonce: 3 }));
    expect(amo.sessionCount()).toBe(2);
    expect(amo.apply(req(b, 0)).kind).toBe('expired');
    expect(amo.apply(req(a, 1)).kind).toBe('result');
  });

  it('a restored snapshot deduplicates exactly as the original', () => {
    const counter = new Counter();
    const amo = new AmoApplication(counter);
    const s = registered(amo.apply({ kind: 'register', nonce: 1 }));
    amo.apply(req(s, 0));
    amo.apply(req(s, 1));
    const copyCounter = new Counter();
    const copy = new AmoApplication(copyCounter);
    copy.restore(amo.snapshot());
    expect(copy.snapshot()).toEqual(amo.snapshot());
    for (const app of [amo, copy]) {
      expect(value(app.apply(req(s, 1)))).toBe('2'); // a duplicate: answered from the cache
      expect(value(app.apply(req(s, 2, 2)))).toBe('3');
    }
    expect(copyCounter.value).toBe(3);
    expect(copy.snapshot()).toEqual(amo.snapshot());
  });
});

describe('ClientSession', () => {
  /** The registration nonce a session draws when random() always answers 0.5. */
  const NONCE = 2 ** 52 + 2 ** 31;

  function session(window = 2) {
    const env = new ReadyCollector<RpcMessage, RpcTimer>(nodeId('c'), () => millis(0), () => 0.5);
    const outcomes: Array<[number, Outcome]> = [];
    const s = new ClientSession(
      env,
      { servers: [nodeId('a'), nodeId('b')], retryMs: millis(10), window, timerOwner: 0 },
      (t, o) => outcomes.push([t, o]),
    );
    return { env, s, outcomes };
  }

  function sentRequests(env: ReadyCollector<RpcMessage, RpcTimer>): Array<{ to: string; seq: Seq }> {
    return env.take().messages.flatMap(({ to, message }) =>
      message.type === 'ClientCommand' && message.command.kind === 'request' ? [{ to, seq: message.command.seq }] : [],
    );
  }

  it('registers first, then sends up to the window, and completes each ticket once', () => {
    const { env, s, outcomes } = session(2);
    s.submit(new Uint8Array([1]));
    s.submit(new Uint8Array([2]));
    s.submit(new Uint8Array([3]));
    const first = env.take();
    expect(first.messages).toHaveLength(1);
    expect(first.messages[0]?.message).toMatchObject({ command: { kind: 'register', nonce: NONCE } });
    s.onResult({ kind: 'registered', nonce: NONCE, session: sessionId(5) });
    expect(sentRequests(env).map((r) => r.seq)).toEqual([0, 1]);
    const done: AmoResult = { kind: 'result', session: sessionId(5), seq: seq(0), result: new Uint8Array([7]) };
    s.onResult(done);
    s.onResult(done);
    expect(outcomes.map(([t]) => t)).toEqual([0]);
    expect(sentRequests(env).map((r) => r.seq)).toEqual([2]);
  });

  it('retransmits on its timer and moves to the next server when one stays silent', () => {
    const { env, s } = session(1);
    s.submit(new Uint8Array([1]));
    s.onResult({ kind: 'registered', nonce: NONCE, session: sessionId(1) });
    env.take();
    s.onTimer({ type: 'SessionRetry', owner: 0 });
    expect(sentRequests(env)).toEqual([{ to: 'a', seq: 0 }]);
    s.onTimer({ type: 'SessionRetry', owner: 0 });
    expect(sentRequests(env)).toEqual([{ to: 'b', seq: 0 }]);
  });

  it('fails in-flight commands as expired and opens a new session for the rest', () => {
    const { env, s, outcomes } = session(1);
    s.submit(new Uint8Array([1]));
    s.submit(new Uint8Array([2]));
    s.onResult({ kind: 'registered', nonce: NONCE, session: sessionId(1) });
    env.take();
    s.onResult({ kind: 'expired', session: sessionId(1), seq: seq(0) });
    expect(outcomes).toEqual([[0, { ok: false, error: 'expired' }]]);
    const next = env.take().messages;
    expect(next[0]?.message).toMatchObject({ command: { kind: 'register' } });
    expect(s.outstanding()).toBe(1);
  });
});
