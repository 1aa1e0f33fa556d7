import { describe, it, expect } from 'vitest';
import { checkLinearizable, type HistoryEntry, type KvOp } from './linearizability.js';

// --- history builders -------------------------------------------------------------------------

function entry(client: string, op: KvOp, call: number, ret?: number, output?: string): HistoryEntry {
  return ret === undefined ? { client, op, call } : { client, op, call, ret: { time: ret, output } };
}
const put = (client: string, key: string, value: string, call: number, ret?: number): HistoryEntry =>
  entry(client, { kind: 'put', key, value }, call, ret);
const del = (client: string, key: string, call: number, ret?: number): HistoryEntry =>
  entry(client, { kind: 'delete', key }, call, ret);
const get = (client: string, key: string, output: string | undefined, call: number, ret?: number): HistoryEntry =>
  entry(client, { kind: 'get', key }, call, ret, output);

// --- seeded randomness ------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(rnd: () => number, xs: readonly T[]): T => {
  const i = Math.floor(rnd() * xs.length);
  if (i >= xs.length) throw new Error('pick from empty list');
  return xs[i] as T;
};

/** A random get (pGet), put of a value from `values` (pPut), or delete. */
function randomOp(rnd: () => number, key: string, pGet: number, pPut: number, values: readonly string[]): KvOp {
  const r = rnd();
  if (r < pGet) return { kind: 'get', key };
  return r < pGet + pPut ? { kind: 'put', key, value: pick(rnd, values) } : { kind: 'delete', key };
}

interface GenOptions {
  ops: number;
  clients: number;
  keys: readonly string[];
  crashRate: number; // chance that a write's outcome is unknown (its client then stops)
}

/**
 * Simulates a real linearizable store: every op gets a random interval [call, ret] and a
 * linearization point inside it; outputs come from applying ops in point order. Unknown-outcome
 * writes take effect at some point after their call, or never.
 */
function linearizableHistory(seed: number, g: GenOptions): HistoryEntry[] {
  const rnd = mulberry32(seed);
  const clock = Array.from({ length: g.clients }, () => Math.floor(rnd() * 5));
  const alive = Array.from({ length: g.clients }, (_, i) => i);
  const sims: { client: string; op: KvOp; call: number; ret: number | undefined; point: number }[] = [];
  for (let i = 0; i < g.ops; i++) {
    const c = pick(rnd, alive);
    const call = (clock[c] ?? 0) + Math.floor(rnd() * 4);
    const ret = call + Math.floor(rnd() * 12);
    const op = randomOp(rnd, pick(rnd, g.keys), 0.5, 0.35, ['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
    const crash = op.kind !== 'get' && alive.length > 1 && rnd() < g.crashRate;
    // Linearization point: inside [call, ret]; a crashed write lands later or never.
    const point = crash ? (rnd() < 0.5 ? Infinity : call + rnd() * 30) : call + rnd() * (ret - call);
    sims.push({ client: `c${c}`, op, call, ret: crash ? undefined : ret, point });
    clock[c] = ret;
    if (crash) alive.splice(alive.indexOf(c), 1);
  }
  const store = new Map<string, string>();
  const outputs = new Map<number, string | undefined>();
  [...sims.keys()]
    .sort((a, b) => (sims[a]?.point ?? 0) - (sims[b]?.point ?? 0))
    .forEach((i) => {
      const s = sims[i];
      if (s === undefined || s.point === Infinity) return;
      if (s.op.kind === 'put') store.set(s.op.key, s.op.value);
      else if (s.op.kind === 'delete') store.delete(s.op.key);
      else outputs.set(i, store.get(s.op.key));
    });
  return sims.map((s, i) => entry(s.client, s.op, s.call, s.ret, outputs.get(i)));
}

/** Obviously-correct oracle: try every real-time-respecting order (unknown-outcome writes optional). */
function bruteForceLinearizable(history: readonly HistoryEntry[]): boolean {
  const keys = new Set(history.map((e) => e.op.key));
  return [...keys].every((key) => {
    const ops = history.filter((e) => e.op.key === key && (e.ret !== undefined || e.op.kind !== 'get'));
    const retOf = (e: HistoryEntry): number => e.ret?.time ?? Infinity;
    const search = (done: ReadonlySet<HistoryEntry>, value: string | undefined): boolean => {
      if (ops.every((e) => done.has(e) || e.ret === undefined)) return true;
      return ops.some((e) => {
        if (done.has(e)) return false;
        if (ops.some((p) => p !== e && !done.has(p) && retOf(p) < e.call)) return false; // p must come first
        if (e.op.kind === 'get' && e.ret?.output !== value) return false;
        const next = e.op.kind === 'put' ? e.op.value : e.op.kind === 'delete' ? undefined : value;
        return search(new Set([...done, e]), next);
      });
    };
    return search(new Set(), undefined);
  });
}

/** Small random histories with random outputs: a mix of linearizable and not. */
function randomSmallHistory(rnd: () => number): HistoryEntry[] {
  const history: HistoryEntry[] = [];
  const clients = 2 + Math.floor(rnd() * 2);
  for (let c = 0; c < clients; c++) {
    let t = Math.floor(rnd() * 3);
    const n = 1 + Math.floor(rnd() * 3);
    for (let i = 0; i < n; i++) {
      const call = t + Math.floor(rnd() * 2);
      const ret = call + Math.floor(rnd() * 4);
      const key = rnd() < 0.8 ? 'k' : 'j';
      const op = randomOp(rnd, key, 0.45, 0.4, ['1', '2']);
      const unknown = i === n - 1 && rnd() < 0.25; // a client's last op may time out
      const output = op.kind === 'get' ? pick(rnd, [undefined, '1', '2']) : undefined;
      history.push(entry(`c${c}`, op, call, unknown ? undefined : ret, output));
      t = ret;
    }
  }
  return history;
}

// --- tests ------------------------------------------------------------------------------------

describe('checkLinearizable: basic register semantics', () => {
  it('accepts the empty history', () => {
    expect(checkLinearizable([])).toEqual({ ok: true });
  });

  it('accepts a linearizable sequential history', () => {
    const h = [
      get('c1', 'a', undefined, 0, 1),
      put('c1', 'a', '1', 2, 3),
      get('c2', 'a', '1', 4, 5),
      put('c2', 'a', '2', 6, 7),
      get('c1', 'a', '2', 8, 9),
    ];
    expect(checkLinearizable(h)).toEqual({ ok: true });
  });

  it('accepts a get overlapping a put that sees either the old or the new value', () => {
    for (const seen of ['0', '1']) {
      const h = [put('c1', 'a', '0', 0, 1), put('c1', 'a', '1', 2, 10), get('c2', 'a', seen, 3, 5)];
      expect(checkLinearizable(h)).toEqual({ ok: true });
    }
  });

  it('accepts concurrent gets that see old and new values in an order some linearization allows', () => {
    // get2 sees "1" before get1 completes with the old value; both overlap the put.
    const h = [put('c1', 'a', '1', 0, 10), get('c2', 'a', '1', 1, 4), get('c3', 'a', undefined, 2, 6)];
    expect(checkLinearizable(h)).toEqual({ ok: true });
  });

  it('treats ops touching at an instant as concurrent', () => {
    const h = [put('c1', 'a', '1', 0, 5), get('c2', 'a', undefined, 5, 6)];
    expect(checkLinearizable(h).ok).toBe(true);
  });

  it('rejects a stale read after a completed put', () => {
    const h = [put('c1', 'a', '1', 0, 1), get('c2', 'a', undefined, 2, 3)];
    const r = checkLinearizable(h);
    expect(r.ok).toBe(false);
    expect(r.key).toBe('a');
    expect(r.reason).toContain('c2: get -> absent on "a" [2, 3]');
  });

  it('rejects a read of a never-written value', () => {
    const h = [put('c1', 'a', '1', 0, 1), get('c2', 'a', 'zzz', 0, 3)];
    const r = checkLinearizable(h);
    expect(r).toMatchObject({ ok: false, key: 'a' });
    expect(r.reason).toMatch(/zzz.*no put on this key ever wrote/);
  });

  it('rejects new-then-old reads in real-time order', () => {
    // put is still in flight, but get1 has already shown "1" before get2 started.
    const h = [put('c1', 'a', '1', 0, 100), get('c2', 'a', '1', 10, 20), get('c3', 'a', undefined, 30, 40)];
    const r = checkLinearizable(h);
    expect(r).toMatchObject({ ok: false, key: 'a' });
    expect(r.reason).toContain('c3: get -> absent');
  });

  it('rejects a lost write', () => {
    const h = [put('c1', 'a', '1', 0, 1), put('c1', 'a', '2', 2, 3), get('c2', 'a', '1', 4, 5)];
    const r = checkLinearizable(h);
    expect(r).toMatchObject({ ok: false, key: 'a' });
    expect(r.reason).toMatch(/leaving the value "2"/);
  });

  it('implements delete', () => {
    const base = [put('c1', 'a', '1', 0, 1), del('c1', 'a', 2, 3)];
    expect(checkLinearizable([...base, get('c2', 'a', undefined, 4, 5)]).ok).toBe(true);
    expect(checkLinearizable([...base, get('c2', 'a', '1', 4, 5)]).ok).toBe(false);
    // A delete concurrent with the get may or may not be seen.
    const racing = [put('c1', 'a', '1', 0, 1), del('c1', 'a', 2, 10)];
    expect(checkLinearizable([...racing, get('c2', 'a', '1', 3, 4)]).ok).toBe(true);
    expect(checkLinearizable([...racing, get('c2', 'a', undefined, 3, 4)]).ok).toBe(true);
    // Deleting then re-putting the same value.
    const again = [...base, put('c1', 'a', '1', 4, 5), get('c2', 'a', '1', 6, 7)];
    expect(checkLinearizable(again).ok).toBe(true);
  });
});

describe('checkLinearizable: unknown outcomes', () => {
  it('lets a later get see an unknown-outcome put or not', () => {
    const base = [put('c1', 'a', '1', 0, 1), put('c2', 'a', '2', 2)];
    expect(checkLinearizable([...base, get('c3', 'a', '1', 5, 6)]).ok).toBe(true);
    expect(checkLinearizable([...base, get('c3', 'a', '2', 5, 6)]).ok).toBe(true);
  });

  it('accepts a get that sees a value written only by an unknown-outcome put', () => {
    expect(checkLinearizable([put('c1', 'a', 'x', 0), get('c2', 'a', 'x', 100, 101)]).ok).toBe(true);
  });

  it('does not let an unknown-outcome put take effect before its call', () => {
    expect(checkLinearizable([get('c2', 'a', 'x', 0, 1), put('c1', 'a', 'x', 5)]).ok).toBe(false);
  });

  it('lets an unknown-outcome put take effect at most once', () => {
    // Seeing "x", then "y", then "x" again needs two writes of "x".
    const h = [
      put('c1', 'a', 'x', 0),
      put('c2', 'a', 'y', 1, 2),
      get('c3', 'a', 'x', 3, 4),
      get('c3', 'a', 'y', 5, 6),
      get('c3', 'a', 'x', 7, 8),
    ];
    expect(checkLinearizable(h).ok).toBe(false);
  });

  it('lets an unknown-outcome delete take effect or not', () => {
    const base = [put('c1', 'a', '1', 0, 1), del('c2', 'a', 2)];
    expect(checkLinearizable([...base, get('c3', 'a', '1', 5, 6)]).ok).toBe(true);
    expect(checkLinearizable([...base, get('c3', 'a', undefined, 5, 6)]).ok).toBe(true);
    // ...but once seen taking effect, it cannot be undone.
    expect(checkLinearizable([...base, get('c3', 'a', undefined, 5, 6), get('c3', 'a', '1', 7, 8)]).ok).toBe(false);
  });

  it('ignores gets with unknown outcome', () => {
    expect(checkLinearizable([put('c1', 'a', '1', 0, 1), get('c2', 'a', undefined, 2)]).ok).toBe(true);
  });
});

describe('checkLinearizable: keys, budget, malformed input', () => {
  it('checks keys independently and reports the failing key', () => {
    const h = [
      put('c1', 'a', '1', 0, 1),
      put('c1', 'b', '1', 2, 3),
      get('c2', 'a', '1', 4, 5),
      // Linearizable for "a" alone would be violated if keys were mixed up: "b" is stale.
      put('c1', 'b', '2', 6, 7),
      get('c2', 'b', '1', 8, 9),
      get('c2', 'a', '1', 10, 11),
    ];
    const r = checkLinearizable(h);
    expect(r).toMatchObject({ ok: false, key: 'b' });
    expect(r.reason).toContain('"b"');
    expect(checkLinearizable(h.filter((e) => e.op.key === 'a')).ok).toBe(true);
  });

  it('does not let one key’s writes satisfy another key’s reads', () => {
    const h = [put('c1', 'a', '1', 0, 1), get('c2', 'b', '1', 2, 3)];
    expect(checkLinearizable(h)).toMatchObject({ ok: false, key: 'b' });
  });

  it('fails rather than passes when the search budget is exhausted', () => {
    const h = linearizableHistory(7, { ops: 200, clients: 5, keys: ['k'], crashRate: 0 });
    const r = checkLinearizable(h, { maxStates: 10 });
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/search budget exceeded/);
  });

  it('prefers a proven violation on another key over an exhausted budget', () => {
    const big = linearizableHistory(8, { ops: 200, clients: 5, keys: ['k'], crashRate: 0 });
    const bad = [put('c9', 'z', '1', 0, 1), get('c9', 'z', undefined, 2, 3)];
    expect(checkLinearizable([...big, ...bad], { maxStates: 10 })).toMatchObject({ ok: false, key: 'z' });
  });

  it('rejects an op that returns before it was called', () => {
    expect(checkLinearizable([put('c1', 'a', '1', 5, 4)])).toMatchObject({ ok: false, key: 'a' });
  });
});

describe('checkLinearizable: randomized', () => {
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

  it('accepts simulated linearizable histories', () => {
    for (const seed of seeds) {
      const h = linearizableHistory(seed, { ops: 400, clients: 4, keys: ['a', 'b', 'c'], crashRate: 0.05 });
      expect(checkLinearizable(h), `seed ${seed}`).toEqual({ ok: true });
    }
  });

  it('rejects them once a get reports a value no linearization allows', () => {
    for (const seed of seeds) {
      const h = linearizableHistory(seed, { ops: 400, clients: 4, keys: ['a', 'b', 'c'], crashRate: 0.05 });
      const gets = h.flatMap((e, i) => (e.op.kind === 'get' && e.ret !== undefined ? [i] : []));
      const i = pick(mulberry32(seed), gets);
      const victim = h[i];
      if (victim?.ret === undefined) throw new Error('expected a completed get');
      h[i] = { ...victim, ret: { time: victim.ret.time, output: 'never-written' } };
      expect(checkLinearizable(h), `seed ${seed}`).toMatchObject({ ok: false, key: victim.op.key });
    }
  });

  it('rejects them once a stale read is appended after a completed overwrite', () => {
    for (const seed of seeds) {
      // No crashes: an unknown-outcome write of the old value could legitimately land last.
      const h = linearizableHistory(seed, { ops: 400, clients: 4, keys: ['a'], crashRate: 0 });
      const end = Math.max(...h.map((e) => e.ret?.time ?? e.call)) + 1;
      const old = h.find((e) => e.op.kind === 'put' && e.ret !== undefined);
      if (old?.op.kind !== 'put') throw new Error('expected a completed put');
      const stale = [put('w', 'a', 'fresh', end, end + 1), get('r', 'a', old.op.value, end + 2, end + 3)];
      expect(checkLinearizable([...h, ...stale]), `seed ${seed}`).toMatchObject({ ok: false, key: 'a' });
    }
  });

  it('agrees with a brute-force oracle on small random histories', () => {
    const rnd = mulberry32(42);
    let linearizable = 0;
    for (let i = 0; i < 3000; i++) {
      const h = randomSmallHistory(rnd);
      const expected = bruteForceLinearizable(h);
      expect(checkLinearizable(h).ok, JSON.stringify(h)).toBe(expected);
      if (expected) linearizable++;
    }
    // Both outcomes must be well represented for the comparison to mean anything.
    expect(linearizable).toBeGreaterThan(300);
    expect(linearizable).toBeLessThan(2700);
  });
});

describe('checkLinearizable: performance', () => {
  it('checks 3,000 ops on one key with 5 clients', () => {
    const h = linearizableHistory(99, { ops: 3000, clients: 5, keys: ['k'], crashRate: 0 });
    expect(checkLinearizable(h)).toEqual({ ok: true });
  });

  it('checks 3,000 ops on one key with some unknown outcomes', () => {
    const h = linearizableHistory(100, { ops: 3000, clients: 5, keys: ['k'], crashRate: 0.002 });
    expect(checkLinearizable(h)).toEqual({ ok: true });
  });
});
