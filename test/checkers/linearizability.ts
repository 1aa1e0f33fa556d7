/**
 * Linearizability checker for a key-value store whose keys are independent registers
 * (initially absent) supporting get / put / delete.
 *
 * Linearizability is compositional (Herlihy & Wing 1990), so the history is split by key and
 * each key is checked on its own. Per key we run the Wing & Gong backtracking search
 * (Wing & Gong 1993, "Testing and verifying concurrent objects") over a linked list of
 * call/return events, with Lowe's memoization of (set of linearized ops, model state) pairs
 * (Lowe 2017, "Testing for linearizability") — the same scheme as Porcupine and Knossos.
 */

export type KvOp =
  | { kind: 'get'; key: string } // output: value | undefined
  | { kind: 'put'; key: string; value: string } // output: undefined
  | { kind: 'delete'; key: string }; // output: undefined

export interface HistoryEntry {
  client: string; // who issued it (a client issues ops sequentially)
  op: KvOp;
  call: number; // invocation time (any monotone number)
  // Completion time and observed output; absent = outcome unknown (timed out / crashed):
  // such an op may have taken effect at any point after `call`, or never.
  ret?: { time: number; output: string | undefined };
}

export interface LinearizabilityResult {
  ok: boolean;
  key?: string;
  reason?: string;
}

const DEFAULT_MAX_STATES = 5_000_000;
/** Model state: 0 = key absent, n > 0 = the n-th distinct value written to the key. */
const ABSENT = 0;
const NIL = -1;
const FULL_WORD = 0xffffffff;

/** One op on a single key, with values interned to small integers. */
interface KeyOp {
  readonly entry: HistoryEntry;
  readonly call: number;
  readonly ret: number; // +Infinity when the outcome is unknown
  readonly kind: KvOp['kind'];
  readonly value: number; // put: value written; get: value observed; delete: unused
}

interface Failure {
  readonly result: LinearizabilityResult;
  readonly inconclusive: boolean; // budget exceeded, not a proven violation
}

/**
 * Checks `history` for linearizability. A proven violation is reported in preference to an
 * exhausted search budget (`maxStates` applies per key); neither ever yields `ok: true`.
 */
export function checkLinearizable(
  history: readonly HistoryEntry[],
  opts: { maxStates?: number } = {},
): LinearizabilityResult {
  const maxStates = opts.maxStates ?? DEFAULT_MAX_STATES;
  const malformed = history.find((e) => e.ret !== undefined && !(e.ret.time >= e.call));
  if (malformed !== undefined) {
    const reason = `malformed history: ${describe(malformed)} returns before its call`;
    return { ok: false, key: malformed.op.key, reason };
  }
  let inconclusive: LinearizabilityResult | undefined;
  for (const [key, entries] of partitionByKey(history)) {
    const failure = checkKey(key, entries, maxStates);
    if (failure === undefined) continue;
    if (!failure.inconclusive) return failure.result;
    inconclusive ??= failure.result;
  }
  return inconclusive ?? { ok: true };
}

/** Groups entries by key, keys in order of first appearance. */
function partitionByKey(history: readonly HistoryEntry[]): Map<string, HistoryEntry[]> {
  const byKey = new Map<string, HistoryEntry[]>();
  for (const e of history) {
    const list = byKey.get(e.op.key);
    if (list === undefined) byKey.set(e.op.key, [e]);
    else list.push(e);
  }
  return byKey;
}

function checkKey(key: string, entries: readonly HistoryEntry[], maxStates: number): Failure | undefined {
  const neverWritten = findNeverWrittenRead(entries);
  if (neverWritten !== undefined) {
    const reason =
      `key ${JSON.stringify(key)} is not linearizable: ` +
      `${describe(neverWritten)} observed a value no put on this key ever wrote`;
    return { result: { ok: false, key, reason }, inconclusive: false };
  }
  return new KeySearch(key, prepareOps(entries), maxStates).run();
}

/** Cheap pre-check giving a precise message for the commonest bug: reading garbage. */
function findNeverWrittenRead(entries: readonly HistoryEntry[]): HistoryEntry | undefined {
  const written = new Set<string>();
  for (const e of entries) if (e.op.kind === 'put') written.add(e.op.value);
  return entries.find((e) => e.op.kind === 'get' && e.ret?.output !== undefined && !written.has(e.ret.output));
}

/**
 * Completed ops first (sorted by call, so the linearized set stays close to a prefix and its
 * key stays short), then unknown-outcome puts/deletes. Unknown-outcome gets are dropped (no
 * effect), as are unknown-outcome writes invoked after every completed op returned (nothing
 * could have observed them).
 */
function prepareOps(entries: readonly HistoryEntry[]): KeyOp[] {
  const ids = new Map<string, number>();
  const intern = (v: string | undefined): number => {
    if (v === undefined) return ABSENT;
    let id = ids.get(v);
    if (id === undefined) ids.set(v, (id = ids.size + 1));
    return id;
  };
  const toOp = (entry: HistoryEntry): KeyOp => ({
    entry,
    call: entry.call,
    ret: entry.ret?.time ?? Infinity,
    kind: entry.op.kind,
    value: intern(entry.op.kind === 'put' ? entry.op.value : entry.ret?.output),
  });
  const completed = entries.filter((e) => e.ret !== undefined).map(toOp).sort((a, b) => a.call - b.call);
  const lastRet = completed.reduce((m, o) => Math.max(m, o.ret), -Infinity);
  const pending = entries.filter((e) => e.ret === undefined && e.op.kind !== 'get' && e.call <= lastRet).map(toOp);
  return [...completed, ...pending];
}

/** Applies `op` to the register; undefined if the op's observed output is impossible here. */
function step(op: KeyOp, state: number): number | undefined {
  switch (op.kind) {
    case 'get':
      return op.value === state ? state : undefined;
    case 'put':
      return op.value;
    case 'delete':
      return ABSENT;
  }
}

/** Reads a typed-array slot; indices are always in range, this just satisfies the type checker. */
function at(a: Int32Array | Uint32Array, i: number): number {
  const v = a[i];
  if (v === undefined) throw new RangeError(`index ${i} out of range`);
  return v;
}

/**
 * Doubly linked list of call/return events in time order, with O(1) removal and re-insertion
 * of an op's pair of events ("dancing links"). Node 0 is a head sentinel; NIL ends the list.
 * At equal times calls sort before returns, so ops touching at an instant count as concurrent.
 */
class EventList {
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly opOf: Int32Array; // node -> op index
  private readonly partner: Int32Array; // call node -> its return node (NIL if unknown outcome)
  private readonly isCallNode: Uint8Array;

  constructor(ops: readonly KeyOp[]) {
    const events: { time: number; isCall: boolean; op: number }[] = [];
    ops.forEach((o, op) => {
      events.push({ time: o.call, isCall: true, op });
      if (o.ret !== Infinity) events.push({ time: o.ret, isCall: false, op });
    });
    events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);
    const n = events.length + 1;
    this.next = new Int32Array(n);
    this.prev = new Int32Array(n);
    this.opOf = new Int32Array(n).fill(NIL);
    this.partner = new Int32Array(n).fill(NIL);
    this.isCallNode = new Uint8Array(n);
    const callNode = new Int32Array(ops.length);
    events.forEach((ev, i) => {
      const node = i + 1;
      this.prev[node] = node - 1;
      this.next[node - 1] = node;
      this.opOf[node] = ev.op;
      this.isCallNode[node] = ev.isCall ? 1 : 0;
      if (ev.isCall) callNode[ev.op] = node;
      else this.partner[at(callNode, ev.op)] = node;
    });
    this.next[n - 1] = NIL;
  }

  first(): number {
    return at(this.next, 0);
  }
  after(node: number): number {
    return at(this.next, node);
  }
  op(node: number): number {
    return at(this.opOf, node);
  }
  isCall(node: number): boolean {
    return this.isCallNode[node] === 1;
  }
  /** Removes an op (its call node and return node) from the list. */
  lift(call: number): void {
    this.unlink(call);
    const ret = at(this.partner, call);
    if (ret !== NIL) this.unlink(ret);
  }
  /** Undoes lift(call); lifts are undone in LIFO order, so the neighbours' links are intact. */
  unlift(call: number): void {
    const ret = at(this.partner, call);
    if (ret !== NIL) this.relink(ret);
    this.relink(call);
  }
  private unlink(node: number): void {
    const p = at(this.prev, node);
    const n = at(this.next, node);
    this.next[p] = n;
    if (n !== NIL) this.prev[n] = p;
  }
  private relink(node: number): void {
    const n = at(this.next, node);
    this.next[at(this.prev, node)] = node;
    if (n !== NIL) this.prev[n] = node;
  }
}

/**
 * Bitset of linearized ops whose memo key costs O(concurrency), not O(n): completed ops are
 * linearized roughly in call order, so their words are all-full below `low`, all-zero above
 * `high`, and only the window in between (plus the few unknown-outcome ops) is spelled out.
 */
class OpSet {
  private readonly words: Uint32Array;
  private readonly completed: number; // ops [0, completed) have known outcomes
  private readonly completedWords: number;
  private readonly lastMask: number; // valid bits of the last completed word
  private low = 0; // every completed word below `low` is full
  private high = -1; // every completed word above `high` is zero

  constructor(completed: number, total: number) {
    this.completed = completed;
    this.completedWords = Math.ceil(completed / 32);
    this.words = new Uint32Array(this.completedWords + Math.ceil((total - completed) / 32));
    this.lastMask = completed % 32 === 0 ? FULL_WORD : ((1 << completed % 32) - 1) >>> 0;
  }

  add(op: number): void {
    const [w, bit] = this.locate(op);
    this.words[w] = at(this.words, w) | bit;
    if (w >= this.completedWords) return;
    if (w > this.high) this.high = w;
    while (this.low < this.completedWords && this.isFull(this.low)) this.low++;
  }

  remove(op: number): void {
    const [w, bit] = this.locate(op);
    this.words[w] = at(this.words, w) & ~bit;
    if (w >= this.completedWords) return;
    if (w < this.low) this.low = w;
    while (this.high >= 0 && at(this.words, this.high) === 0) this.high--;
  }

  /** Canonical string for (this set, state). */
  key(state: number): string {
    const mid = Array.from(this.words.subarray(this.low, Math.max(this.low, this.high + 1)));
    const tail = Array.from(this.words.subarray(this.completedWords));
    return `${state}|${this.low}|${mid.join(',')}|${tail.join(',')}`;
  }

  private locate(op: number): [number, number] {
    // Completed ops and unknown-outcome ops live in separate word ranges.
    const i = op < this.completed ? op : op - this.completed + this.completedWords * 32;
    return [i >>> 5, (1 << (i & 31)) >>> 0];
  }

  private isFull(w: number): boolean {
    return at(this.words, w) === (w === this.completedWords - 1 ? this.lastMask : FULL_WORD);
  }
}

/** Where the deepest branch of the search got stuck, for the failure message. */
interface Stuck {
  readonly op: number; // completed op that could not be linearized before its return
  readonly depth: number; // ops linearized on that branch
  readonly state: number;
  readonly recent: readonly number[]; // last few ops linearized on that branch, oldest first
}

/** WGL depth-first search over one key's ops, memoizing visited (linearized set, state). */
class KeySearch {
  private readonly list: EventList;
  private readonly linearized: OpSet;
  private readonly completed: number;
  private readonly seen = new Set<string>();
  private readonly stack: number[] = []; // [call node, state before] pairs
  private state = ABSENT;
  private remaining: number; // completed ops not yet linearized
  private stuck: Stuck | undefined;

  constructor(
    private readonly key: string,
    private readonly ops: readonly KeyOp[],
    private readonly maxStates: number,
  ) {
    this.completed = ops.filter((o) => o.ret !== Infinity).length;
    this.remaining = this.completed;
    this.list = new EventList(ops);
    this.linearized = new OpSet(this.completed, ops.length);
  }

  run(): Failure | undefined {
    let node = this.list.first();
    while (this.remaining > 0) {
      if (node === NIL) throw new Error('unreachable: an unlinearized return event must remain');
      if (!this.list.isCall(node)) {
        // An op returned without being linearized: this branch is dead.
        this.noteStuck(this.list.op(node));
        const resumed = this.backtrack();
        if (resumed === undefined) return this.violation();
        node = this.list.after(resumed);
      } else if (this.tryLinearize(node)) {
        if (this.seen.size > this.maxStates) return this.budgetExceeded();
        node = this.list.first();
      } else {
        node = this.list.after(node);
      }
    }
    return undefined;
  }

  /** Linearizes the op called at `node` next, unless its output is impossible here or the
   *  resulting (linearized set, state) was already explored. */
  private tryLinearize(node: number): boolean {
    const op = this.list.op(node);
    const next = step(this.opAt(op), this.state);
    if (next === undefined) return false;
    this.linearized.add(op);
    const key = this.linearized.key(next);
    if (this.seen.has(key)) {
      this.linearized.remove(op);
      return false;
    }
    this.seen.add(key);
    this.stack.push(node, this.state);
    this.state = next;
    this.list.lift(node);
    if (op < this.completed) this.remaining--;
    return true;
  }

  /** Undoes the most recent linearization; returns its call node, or undefined if none is left. */
  private backtrack(): number | undefined {
    const state = this.stack.pop();
    const node = this.stack.pop();
    if (node === undefined || state === undefined) return undefined;
    const op = this.list.op(node);
    this.state = state;
    this.linearized.remove(op);
    this.list.unlift(node);
    if (op < this.completed) this.remaining++;
    return node;
  }

  private noteStuck(op: number): void {
    const depth = this.stack.length / 2;
    if (this.stuck !== undefined && this.stuck.depth >= depth) return;
    const recent: number[] = [];
    for (let i = Math.max(0, this.stack.length - 10); i < this.stack.length; i += 2) {
      recent.push(this.list.op(this.stack[i] ?? NIL));
    }
    this.stuck = { op, depth, state: this.state, recent };
  }

  private violation(): Failure {
    let reason = `key ${JSON.stringify(this.key)} is not linearizable`;
    if (this.stuck !== undefined) reason += `: ${this.explain(this.stuck)}`;
    return { result: { ok: false, key: this.key, reason }, inconclusive: false };
  }

  /** The stuck op, the deepest partial linearization's tail, and the ops it raced with. */
  private explain(s: Stuck): string {
    const stuckOp = this.opAt(s.op);
    const list = (ops: readonly KeyOp[]): string => ops.map((o) => describe(o.entry)).join('; ');
    const overlapping = this.ops.filter((o) => o !== stuckOp && o.call <= stuckOp.ret && o.ret >= stuckOp.call);
    const recent = s.recent.map((i) => this.opAt(i));
    return (
      `no valid linearization point for ${describe(stuckOp.entry)}. ` +
      `Longest partial linearization: ${s.depth} of ${this.ops.length} ops, ` +
      `leaving the value ${this.valueText(s.state)}` +
      (recent.length > 0 ? `; it ended with: ${list(recent)}` : '') +
      `. Ops overlapping it: ${overlapping.length === 0 ? '(none)' : list(overlapping.slice(0, 8))}` +
      (overlapping.length > 8 ? `; ... (${overlapping.length - 8} more)` : '')
    );
  }

  private budgetExceeded(): Failure {
    const reason =
      `search budget exceeded on key ${JSON.stringify(this.key)}: explored more than ${this.maxStates} states ` +
      `for ${this.ops.length} ops; linearizability unknown (raise maxStates or shorten the history)`;
    return { result: { ok: false, key: this.key, reason }, inconclusive: true };
  }

  private opAt(i: number): KeyOp {
    const op = this.ops[i];
    if (op === undefined) throw new RangeError(`op ${i} out of range`);
    return op;
  }

  private valueText(state: number): string {
    if (state === ABSENT) return 'absent';
    const writer = this.ops.find((o) => o.kind === 'put' && o.value === state);
    return writer !== undefined && writer.entry.op.kind === 'put' ? JSON.stringify(writer.entry.op.value) : `#${state}`;
  }
}

/** e.g. `c2: get -> "1" [5, 7]`, `c1: put "2" [3, ?]`. */
function describe(e: HistoryEntry): string {
  const op =
    e.op.kind === 'put'
      ? `put ${JSON.stringify(e.op.value)}`
      : e.op.kind === 'delete'
        ? 'delete'
        : `get -> ${e.ret === undefined ? '?' : e.ret.output === undefined ? 'absent' : JSON.stringify(e.ret.output)}`;
  return `${e.client}: ${op} on ${JSON.stringify(e.op.key)} [${e.call}, ${e.ret?.time ?? '?'}]`;
}
