// Unit tests of the at-most-once wrapper and the client session, fed inputs directly.
// The wrapper's stores are in-memory maps (test/support/map-store.ts).
import { describe, expect, it } from 'vitest';
import { ReadyCollector } from '../src/core/env.js';
import { millis, nodeId, type Seq, type SessionId, seq, sessionId, shardId } from '../src/core/ids.js';
import { AMO_META_KEY, AmoApplication, type AmoOptions } from '../src/rpc/amo-application.js';
import { ClientSession, type Outcome } from '../src/rpc/client-session.js';
import type { AmoCommand, AmoResult, RpcMessage, RpcTimer } from '../src/rpc/messages.js';
import { Counter, counterValue, INCREMENT, READ, REFUSED } from './support/counter.js';
import { cloneStores, type MapStores, mapStores } from './support/map-store.js';

const dec = new TextDecoder();

function registered(r: AmoResult): SessionId {
  if (r.kind !== 'registered') throw new Error(`expected registered, got ${r.kind}`);
  return r.session;
}

function req(session: SessionId, s: number, ackedBelow = 0, command = INCREMENT): AmoCommand {
  return { kind: 'request', session, seq: seq(s), ackedBelow: seq(ackedBelow), command };
}

function value(r: AmoResult): string {
  if (r.kind !== 'result') throw new Error(`expected result, got ${r.kind}`);
  return dec.decode(r.result);
}

/** A wrapper around a Counter over fresh in-memory stores. */
function setup(options?: AmoOptions) {
  const amo = new AmoApplication(new Counter(), options);
  const stores = mapStores();
  return wrap(amo, stores);
}

function wrap(amo: AmoApplication, stores: MapStores) {
  return {
    amo,
    stores,
    apply: (c: AmoCommand): AmoResult => {
      const r = amo.apply(c, stores);
      amo.checkInvariants(stores.sessions);
      return r;
    },
    counter: () => counterValue(stores.app),
    sessionCount: () => amo.sessionCount(stores.sessions),
    /** Session records in the store (besides the counters and the indexes). */
    records: () => stores.sessions.keys().filter((k) => k.startsWith('s/')).length,
    cached: (s: SessionId, n: number) => {
      const r = amo.cachedResult(s, seq(n), stores);
      return r === undefined ? undefined : dec.decode(r);
    },
    /** The cached results, decoded; a Counter's results are distinct values, so they tell which seqs are kept. */
    results: () =>
      stores.results
        .entries()
        .map(([, v]) => dec.decode(v))
        .sort((x, y) => Number(x) - Number(y)),
  };
}

/** A new wrapper over a copy of `stores` (a restart, or a shard moved elsewhere): the table is all in the stores. */
function reloaded(stores: MapStores, options?: AmoOptions) {
  const copy = cloneStores(stores);
  const amo = new AmoApplication(new Counter(), options);
  amo.checkInvariants(copy.sessions);
  return wrap(amo, copy);
}

const SMALL: AmoOptions = { maxSessions: 10, sessionTtlCommands: 100, maxWindow: 8 };

describe('AmoApplication', () => {
  it('applies each (session, seq) once and answers duplicates from its results store', () => {
    const t = setup();
    const s = registered(t.apply({ kind: 'register', nonce: 9 }));
    expect(value(t.apply(req(s, 0)))).toBe('1');
    expect(value(t.apply(req(s, 0)))).toBe('1');
    expect(value(t.apply(req(s, 1)))).toBe('2');
    expect(value(t.apply(req(s, 0)))).toBe('1');
    expect(t.counter()).toBe(2);
    expect(t.cached(s, 0)).toBe('1');
    expect(t.cached(s, 1)).toBe('2');
    expect(t.cached(s, 2)).toBeUndefined(); // not applied yet
    expect(t.results()).toEqual(['1', '2']);
  });

  it('answers a duplicate applied out of order (a later seq first) from the store, applying each once', () => {
    const t = setup(SMALL);
    const s = registered(t.apply({ kind: 'register', nonce: 1 }));
    expect(value(t.apply(req(s, 2)))).toBe('1');
    expect(value(t.apply(req(s, 0)))).toBe('2');
    expect(value(t.apply(req(s, 2)))).toBe('1');
    expect(value(t.apply(req(s, 1)))).toBe('3');
    expect(value(t.apply(req(s, 0)))).toBe('2');
    expect(t.counter()).toBe(3);
  });

  it('a retried registration gets the same session, not a new one', () => {
    const t = setup();
    const a = registered(t.apply({ kind: 'register', nonce: 5 }));
    expect(registered(t.apply({ kind: 'register', nonce: 5 }))).toBe(a);
    const b = registered(t.apply({ kind: 'register', nonce: 6 }));
    expect(b).not.toBe(a);
    expect(t.sessionCount()).toBe(2);
    const copy = reloaded(t.stores);
    expect(registered(copy.apply({ kind: 'register', nonce: 5 }))).toBe(a);
    expect(registered(copy.apply({ kind: 'register', nonce: 6 }))).toBe(b);
    expect(copy.sessionCount()).toBe(2);
  });

  it('a nonce whose session expired opens a new session, never an old id', () => {
    const t = setup({ maxSessions: 10, sessionTtlCommands: 2, maxWindow: 8 });
    const a = registered(t.apply({ kind: 'register', nonce: 5 }));
    const other = registered(t.apply({ kind: 'register', nonce: 6 }));
    for (let i = 0; i < 3; i++) t.apply(req(other, i, i));
    expect(t.apply(req(a, 0)).kind).toBe('expired');
    const again = registered(t.apply({ kind: 'register', nonce: 5 }));
    expect(again).not.toBe(a);
    expect(again).not.toBe(other);
  });

  it('forgets acknowledged results and refuses seqs below the mark', () => {
    const t = setup();
    const s = registered(t.apply({ kind: 'register', nonce: 1 }));
    t.apply(req(s, 0));
    t.apply(req(s, 1, 1));
    expect(t.cached(s, 0)).toBeUndefined();
    expect(t.apply(req(s, 0)).kind).toBe('expired');
    expect(t.counter()).toBe(2);
  });

  it('deletes the stored results of acknowledged seqs as ackedBelow moves', () => {
    const t = setup(SMALL);
    const s = registered(t.apply({ kind: 'register', nonce: 1 }));
    for (let i = 0; i < 3; i++) t.apply(req(s, i));
    expect(t.results()).toEqual(['1', '2', '3']);
    t.apply(req(s, 3, 2)); // acknowledges seqs 0 and 1
    expect(t.results()).toEqual(['3', '4']);
    t.apply(req(s, 3, 1)); // a delayed duplicate with an older mark: changes nothing
    expect(t.results()).toEqual(['3', '4']);
    expect(t.counter()).toBe(4);
    t.apply(req(s, 6, 6)); // acknowledges every seq it holds (and the two it never saw)
    expect(t.results()).toEqual(['5']);
    expect(t.stores.results.size).toBe(1);
    expect(t.cached(s, 6)).toBe('5');
    for (const n of [2, 3, 4, 5]) expect(t.apply(req(s, n, 6)).kind).toBe('expired');
    expect(t.counter()).toBe(5);
  });

  it('refuses a seq past the window instead of caching without bound', () => {
    const t = setup({ maxSessions: 10, sessionTtlCommands: 100, maxWindow: 4 });
    const s = registered(t.apply({ kind: 'register', nonce: 1 }));
    expect(t.apply(req(s, 4)).kind).toBe('expired');
    expect(t.counter()).toBe(0);
    expect(t.stores.results.size).toBe(0);
    expect(t.apply(req(s, 3)).kind).toBe('result');
    expect(t.counter()).toBe(1);
  });

  it('answers a request of an unknown session as expired, without applying it', () => {
    const t = setup();
    expect(t.apply(req(sessionId(42), 0))).toEqual({ kind: 'expired', session: 42, seq: 0 });
    expect(t.counter()).toBe(0);
    expect(t.stores.results.size).toBe(0);
  });

  it('expires idle sessions by applied-command count, deterministically', () => {
    const t = setup({ maxSessions: 10, sessionTtlCommands: 3, maxWindow: 8 });
    const idle = registered(t.apply({ kind: 'register', nonce: 1 }));
    const busy = registered(t.apply({ kind: 'register', nonce: 2 }));
    for (let i = 0; i < 4; i++) t.apply(req(busy, i, i));
    expect(t.apply(req(idle, 0)).kind).toBe('expired');
    expect(t.apply(req(busy, 4, 4)).kind).toBe('result');
    expect(t.sessionCount()).toBe(1);
  });

  it('deletes the results and the record of a session that expires', () => {
    const t = setup({ maxSessions: 10, sessionTtlCommands: 3, maxWindow: 8 });
    const a = registered(t.apply({ kind: 'register', nonce: 1 }));
    t.apply(req(a, 0)); // '1'
    t.apply(req(a, 1)); // '2'
    const b = registered(t.apply({ kind: 'register', nonce: 2 }));
    t.apply(req(b, 0)); // '3'
    expect(t.results()).toEqual(['1', '2', '3']);
    expect(t.records()).toBe(2);
    t.apply(req(b, 1, 1)); // '4'; acknowledges '3'
    t.apply(req(b, 2, 2)); // '5'; acknowledges '4'; a has been idle for 4 commands now
    expect(t.sessionCount()).toBe(1);
    expect(t.results()).toEqual(['5']);
    expect(t.records()).toBe(1); // b
    expect(t.cached(a, 0)).toBeUndefined();
    expect(t.apply(req(a, 1)).kind).toBe('expired');
    expect(t.counter()).toBe(5);
  });

  it('keeps at most maxSessions, expiring the least recently active', () => {
    const t = setup({ maxSessions: 2, sessionTtlCommands: 1000, maxWindow: 8 });
    const a = registered(t.apply({ kind: 'register', nonce: 1 }));
    const b = registered(t.apply({ kind: 'register', nonce: 2 }));
    t.apply(req(a, 0));
    registered(t.apply({ kind: 'register', nonce: 3 }));
    expect(t.sessionCount()).toBe(2);
    expect(t.apply(req(b, 0)).kind).toBe('expired');
    expect(t.apply(req(a, 1)).kind).toBe('result');
  });

  it('deletes the results of an evicted session, and keeps the others', () => {
    const t = setup({ maxSessions: 2, sessionTtlCommands: 1000, maxWindow: 8 });
    const a = registered(t.apply({ kind: 'register', nonce: 1 }));
    const b = registered(t.apply({ kind: 'register', nonce: 2 }));
    t.apply(req(b, 0)); // '1'
    t.apply(req(b, 1)); // '2'
    t.apply(req(a, 0)); // '3': a is now the more recently active
    expect(t.results()).toEqual(['1', '2', '3']);
    registered(t.apply({ kind: 'register', nonce: 3 })); // evicts b
    expect(t.results()).toEqual(['3']);
    expect(t.records()).toBe(2); // a and the new one
    expect(value(t.apply(req(a, 0)))).toBe('3'); // a's duplicate is still answered from the store
    expect(t.apply(req(b, 0)).kind).toBe('expired');
    expect(t.counter()).toBe(3);
  });

  it('answers reads through inner.query, in log order, and never caches them', () => {
    const t = setup(SMALL);
    const s = registered(t.apply({ kind: 'register', nonce: 1 }));
    t.apply(req(s, 0));
    const resultsBefore = t.stores.results.dump();
    const writesBefore = { results: t.stores.results.writes, app: t.stores.app.writes };
    const read = t.apply({ kind: 'read', id: 77, command: READ });
    expect(read.kind).toBe('read');
    if (read.kind !== 'read') return;
    expect(read.id).toBe(77);
    expect(dec.decode(read.result)).toBe('1');
    expect(t.stores.results.dump()).toEqual(resultsBefore);
    expect({ results: t.stores.results.writes, app: t.stores.app.writes }).toEqual(writesBefore);
    t.apply(req(s, 1));
    // The same read id again reads again: it sees the increment applied since.
    const again = t.apply({ kind: 'read', id: 77, command: READ });
    expect(again.kind === 'read' && dec.decode(again.result)).toBe('2');
    expect(t.counter()).toBe(2);
    expect(t.results()).toEqual(['1', '2']); // no result stored for either read
  });

  it('a read that would write is refused by inner.query and changes nothing', () => {
    const t = setup(SMALL);
    const r = t.apply({ kind: 'read', id: 1, command: INCREMENT });
    expect(r).toEqual({ kind: 'read', id: 1, result: REFUSED });
    expect(t.counter()).toBe(0);
    expect(t.stores.app.writes).toBe(0);
    expect(t.stores.results.writes).toBe(0);
    expect(t.sessionCount()).toBe(0);
  });

  it('a wrapper over a copy of the stores goes on identically: duplicates, expiry and eviction (the table is all on disk)', () => {
    const options: AmoOptions = { maxSessions: 3, sessionTtlCommands: 6, maxWindow: 8 };
    const t = setup(options);
    const a = registered(t.apply({ kind: 'register', nonce: 1 }));
    const b = registered(t.apply({ kind: 'register', nonce: 2 }));
    const idle = registered(t.apply({ kind: 'register', nonce: 3 }));
    t.apply(req(idle, 0)); // '1'
    t.apply(req(b, 0)); // '2'
    t.apply(req(b, 1)); // '3'
    t.apply(req(a, 0)); // '4': a (the lowest id) is the most recently active
    t.apply(req(a, 1)); // '5'
    t.apply(req(a, 2, 1)); // '6': acknowledges '4'
    t.apply(req(b, 2)); // '7'
    t.apply(req(a, 3, 2)); // '8'; idle's last activity was 7 commands ago: it expires here
    expect(t.sessionCount()).toBe(2);
    expect(t.stores.sessions.get(AMO_META_KEY)).toBeDefined();

    const copy = reloaded(t.stores, options);
    expect(copy.sessionCount()).toBe(2);
    // The same commands from here on give the same results and leave the same stores.
    const script: AmoCommand[] = [
      req(a, 2, 2), // a duplicate: answered from the results store
      req(b, 0), // a duplicate
      req(a, 1, 2), // acknowledged: expired
      req(idle, 0), // expired before the reload: stays expired
      { kind: 'register', nonce: 1 }, // a retried registration: the same session
      { kind: 'register', nonce: 3 }, // idle's nonce: a new session, with a new id
      { kind: 'read', id: 5, command: READ },
      { kind: 'register', nonce: 4 }, // a fourth session: evicts the least recently active (b)
      req(a, 4, 4),
      req(b, 3),
      { kind: 'read', id: 6, command: READ },
      { kind: 'read', id: 7, command: READ },
      // The session opened for nonce 3 (id 4: ids go on from the stored counter) has been
      // idle for 7 commands (counted on from the stored count): it expires.
      req(sessionId(4), 0),
    ];
    const outcomes = [t, copy].map((x) => script.map((c) => x.apply(c)));
    expect(outcomes[1]).toEqual(outcomes[0]);
    const got = outcomes[0] ?? [];
    expect(value(got[0] as AmoResult)).toBe('6');
    expect(value(got[1] as AmoResult)).toBe('2');
    expect(got[2]?.kind).toBe('expired');
    expect(got[3]?.kind).toBe('expired');
    expect(got[4]).toEqual({ kind: 'registered', nonce: 1, session: a });
    expect(got[5]).toEqual({ kind: 'registered', nonce: 3, session: sessionId(4) });
    expect(got[6]).toMatchObject({ kind: 'read', id: 5 });
    expect(value(got[8] as AmoResult)).toBe('9');
    expect(got[9]?.kind).toBe('expired'); // b was evicted
    expect(got[12]).toEqual({ kind: 'expired', session: 4, seq: 0 });
    expect(copy.counter()).toBe(9);
    for (const store of ['sessions', 'results', 'app'] as const) {
      expect(copy.stores[store].dump(), store).toEqual(t.stores[store].dump());
    }
  });

  it('keeps no state of its own: one wrapper serves many tables (one per shard) without mixing them', () => {
    const amo = new AmoApplication(new Counter(), SMALL);
    const [x, y] = [wrap(amo, mapStores()), wrap(amo, mapStores())];
    const sx = registered(x.apply({ kind: 'register', nonce: 1 }));
    expect(value(x.apply(req(sx, 0)))).toBe('1');
    expect(y.apply(req(sx, 0)).kind).toBe('expired'); // the session lives in x's table only
    const sy = registered(y.apply({ kind: 'register', nonce: 1 }));
    expect(sy).toBe(sx); // ids are per table
    expect(value(y.apply(req(sy, 0)))).toBe('1');
    expect(value(x.apply(req(sx, 0)))).toBe('1'); // x's duplicate still answered from x's results
    expect([x.counter(), y.counter()]).toEqual([1, 1]);
  });

  it('expiry walks the activity index once: many idle counts cost one read each over the table\'s life', () => {
    const t = setup({ maxSessions: 4, sessionTtlCommands: 5, maxWindow: 8 });
    const s = registered(t.apply({ kind: 'register', nonce: 1 }));
    for (let i = 0; i < 50; i++) t.apply(req(s, i, i));
    // One live session, touched at every count: one activity key, and the cursor just behind the ttl.
    expect(t.stores.sessions.keys().filter((k) => k.startsWith('a/'))).toHaveLength(1);
    expect(t.sessionCount()).toBe(1);
    for (let i = 0; i < 6; i++) t.apply({ kind: 'read', id: i, command: READ });
    expect(t.sessionCount()).toBe(0);
    expect(t.stores.sessions.keys().filter((k) => !k.startsWith('m'))).toEqual([]);
  });
});

describe('ClientSession', () => {
  /** The registration nonce a session draws when random() always answers 0.5. */
  const NONCE = 2 ** 52 + 2 ** 31;

  function session(window = 2) {
    const clock = { now: 0 };
    const env = new ReadyCollector<RpcMessage, RpcTimer>(nodeId('c'), () => millis(clock.now), () => 0.5);
    const outcomes: Array<[number, Outcome]> = [];
    const s = new ClientSession(
      env,
      { servers: [nodeId('a'), nodeId('b')], retryMs: millis(10), window, timerOwner: 0, shard: shardId(0) },
      (t, o) => outcomes.push([t, o]),
    );
    /** Advances the clock by `ms`, firing the retry timer every 10 ms as the runtime would. */
    const wait = (ms: number) => {
      for (let t = 0; t < ms; t += 10) {
        clock.now += 10;
        s.onTimer({ type: 'SessionRetry', owner: 0 });
      }
    };
    return { env, s, outcomes, clock, wait };
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

  it('moves to the next server when one stays silent for a timeout, and sends again there at once', () => {
    const { env, s, wait } = session(1);
    s.submit(new Uint8Array([1]));
    s.onResult({ kind: 'registered', nonce: NONCE, session: sessionId(1) });
    expect(sentRequests(env)).toEqual([{ to: 'a', seq: 0 }]);
    wait(10);
    expect(sentRequests(env)).toEqual([{ to: 'b', seq: 0 }]);
    // Still silent: the next server is tried after twice as long.
    wait(10);
    expect(sentRequests(env)).toEqual([]);
    wait(10);
    expect(sentRequests(env)).toEqual([{ to: 'a', seq: 0 }]);
  });

  it('paces retransmissions by the measured round trip, doubling per try up to 16 periods (a slow command is not sent again and again)', () => {
    const { env, s, clock, wait } = session(1);
    s.submit(new Uint8Array([1]));
    s.onResult({ kind: 'registered', nonce: NONCE, session: sessionId(1) });
    env.take();
    // Answers after 40 ms (4 retry periods): the round trip is learnt from commands sent once.
    for (let i = 0; i < 3; i++) {
      clock.now += 40;
      s.onResult({ kind: 'result', session: sessionId(1), seq: seq(i), result: new Uint8Array() });
      s.submit(new Uint8Array([2]));
      env.take();
    }
    // The next command goes unanswered for a second: sent again a handful of times, not 100.
    const sends: number[] = [];
    for (let t = 0; t < 1000; t += 10) {
      wait(10);
      for (const r of sentRequests(env)) if (r.seq === 3) sends.push(t + 10);
    }
    expect(sends[0]).toBeGreaterThanOrEqual(40);
    const gaps = sends.slice(1).map((t, i) => t - (sends[i] ?? 0));
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThanOrEqual(Math.min(160, 2 * (gaps[i - 1] ?? 0)) - 10);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(170); // the cap: 16 retry periods
    expect(sends.length).toBeLessThanOrEqual(9);
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
