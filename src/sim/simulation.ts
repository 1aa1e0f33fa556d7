// Deterministic simulator (DESIGN.md 1; FoundationDB/TigerBeetle VOPR style).
// Runs the same protocol roles as the real runtime, under a virtual clock,
// over a seeded network that loses, duplicates, delays (and so reorders)
// messages and can partition any set of nodes, with disks that lose unsynced
// writes on crash. One seed gives one run, event for event: every event is
// folded into a trace hash that tests compare across runs.
import { createHash, type Hash } from 'node:crypto';
import { assert, assertNever } from '../core/assert.js';
import { type NodeFactory, type ProtocolNode, ReadyCollector } from '../core/env.js';
import { type Millis, type NodeId, millis } from '../core/ids.js';
import { Prng } from '../core/prng.js';
import { EventQueue } from './event-queue.js';
import { MemoryStorage } from './memory-storage.js';
import type { ScanRequest } from '../core/storage.js';

export interface NetworkFaults {
  /** Probability that a message is dropped. */
  readonly lossRate: number;
  /** Probability that a message is delivered twice. */
  readonly duplicateRate: number;
  /** Each delivery takes a uniform delay in [min, max]; spread reorders messages. */
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
}

/** Events a failing run can print. */
const TRACE_LINES = Number(process.env.SIM_TRACE_LINES ?? 60);

export const RELIABLE: NetworkFaults = { lossRate: 0, duplicateRate: 0, minDelayMs: 1, maxDelayMs: 1 };

export interface SimulationOptions<M> {
  readonly seed: number;
  readonly faults: NetworkFaults;
  /** Stable text of a message for the trace; defaults to JSON. */
  readonly describe?: (message: M) => string;
  /**
   * Copies a message in flight so that sender and receiver never share
   * objects; pass a wire round trip to exercise codecs too.
   */
  readonly clone?: (message: M) => M;
}

type SimEvent<M, T> =
  | { readonly kind: 'deliver'; readonly from: NodeId; readonly to: NodeId; readonly message: M }
  | { readonly kind: 'scanned'; readonly node: NodeId; readonly incarnation: number; readonly request: ScanRequest }
  | { readonly kind: 'timer'; readonly node: NodeId; readonly incarnation: number; readonly timer: T }
  | { readonly kind: 'action'; readonly label: string; readonly run: () => void };

interface SimNode<M, T> {
  readonly id: NodeId;
  readonly factory: NodeFactory<M, T>;
  readonly preload: readonly string[];
  readonly storage: MemoryStorage;
  incarnation: number;
  collector: ReadyCollector<M, T>;
  role: ProtocolNode<M, T> | undefined;
}

export class Simulation<M, T> {
  private readonly rng: Prng;
  private readonly netRng: Prng;
  private readonly queue = new EventQueue<SimEvent<M, T>>();
  private readonly nodes = new Map<NodeId, SimNode<M, T>>();
  /** Node -> partition side; nodes in no side reach everyone. */
  private sides = new Map<NodeId, number>();
  private faults: NetworkFaults;
  private clock = 0;
  private events = 0;
  private readonly trace: Hash = createHash('sha256');
  /** The last TRACE_LINES events in words, for a failing seed's report. */
  private readonly recent: string[] = [];

  constructor(private readonly options: SimulationOptions<M>) {
    this.rng = new Prng(options.seed);
    this.netRng = this.rng.fork();
    this.faults = options.faults;
  }

  get now(): Millis {
    return millis(this.clock);
  }

  get eventCount(): number {
    return this.events;
  }

  traceHash(): string {
    return this.trace.copy().digest('hex');
  }

  /** Adds a node; `preload` names the small spaces its factory is handed whole. */
  addNode(id: NodeId, factory: NodeFactory<M, T>, preload: readonly string[] = []): void {
    assert(!this.nodes.has(id), `node ${id} added twice`);
    const storage = new MemoryStorage();
    const n: SimNode<M, T> = {
      id,
      factory,
      preload,
      storage,
      incarnation: 0,
      collector: this.collectorFor(id, storage),
      role: undefined,
    };
    this.nodes.set(id, n);
    this.start(n);
  }

  /** The live role of `id`, narrowed to the class the test expects. */
  role<R extends ProtocolNode<M, T>>(id: NodeId, cls: abstract new (...args: never[]) => R): R {
    const r = this.simNode(id).role;
    assert(r instanceof cls, `node ${id} is down or not a ${cls.name}`);
    return r;
  }

  isUp(id: NodeId): boolean {
    return this.simNode(id).role !== undefined;
  }

  /** Power loss: volatile state and unsynced writes are gone; messages to it are lost while down. */
  crash(id: NodeId): void {
    const n = this.simNode(id);
    assert(n.role !== undefined, `crash of ${id}, which is down`);
    this.record(`crash ${id}`);
    n.role = undefined;
    n.incarnation += 1;
    n.storage.crash();
  }

  /** Rebuilds the node from what its disk kept. */
  restart(id: NodeId): void {
    const n = this.simNode(id);
    assert(n.role === undefined, `restart of ${id}, which is up`);
    this.record(`restart ${id}`);
    n.collector = this.collectorFor(id, n.storage);
    this.start(n);
  }

  /** Disk loss of a crashed node: it restarts with nothing. */
  wipe(id: NodeId): void {
    const n = this.simNode(id);
    assert(n.role === undefined, `wipe of ${id}, which is up`);
    this.record(`wipe ${id}`);
    n.storage.wipe();
  }

  /** The last events in words, oldest first: what a failing seed prints. */
  recentEvents(): string {
    return this.recent.join('\n');
  }

  /** Nodes in different groups cannot exchange messages; nodes in no group reach everyone. */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    this.sides = new Map();
    groups.forEach((g, side) => {
      for (const id of g) this.sides.set(id, side);
    });
    this.record(`partition ${groups.map((g) => g.join(',')).join(' | ')}`);
  }

  heal(): void {
    this.sides = new Map();
    this.record('heal');
  }

  setFaults(faults: NetworkFaults): void {
    this.faults = faults;
    this.record(`faults ${JSON.stringify(faults)}`);
  }

  /** Runs one step on `id` now, from outside (a scripted client call), and drains its effects. */
  input(id: NodeId, label: string, step: (role: ProtocolNode<M, T>) => void): void {
    const n = this.simNode(id);
    assert(n.role !== undefined, `input to ${id}, which is down`);
    this.record(`input ${id} ${label}`);
    step(n.role);
    this.afterStep(n);
  }

  /** Runs `run` at virtual time `atMs` from now, in order with other events. */
  schedule(afterMs: number, label: string, run: () => void): void {
    this.queue.push(this.clock + afterMs, { kind: 'action', label, run });
  }

  /** Processes the next event; false when none is left. */
  step(): boolean {
    const e = this.queue.pop();
    if (e === undefined) return false;
    assert(e.at >= this.clock, 'time went backwards');
    this.clock = e.at;
    this.events += 1;
    this.dispatch(e.event);
    return true;
  }

  runFor(durationMs: number): void {
    const end = this.clock + durationMs;
    for (;;) {
      const t = this.queue.peekTime();
      if (t === undefined || t > end) break;
      this.step();
    }
    this.clock = end;
  }

  /** Runs until `done()` holds (checked after each event) or `maxMs` of virtual time pass. */
  runUntil(done: () => boolean, maxMs: number): boolean {
    const end = this.clock + maxMs;
    while (!done()) {
      const t = this.queue.peekTime();
      if (t === undefined || t > end) return false;
      this.step();
    }
    return true;
  }

  private dispatch(e: SimEvent<M, T>): void {
    switch (e.kind) {
      case 'deliver': {
        const n = this.simNode(e.to);
        if (n.role === undefined || !this.connected(e.from, e.to)) {
          this.record(`lost ${e.from}->${e.to}`);
          return;
        }
        this.record(`deliver ${e.from}->${e.to} ${this.describe(e.message)}`);
        n.role.onMessage(e.from, e.message);
        this.afterStep(n);
        return;
      }
      case 'timer': {
        const n = this.simNode(e.node);
        if (n.role === undefined || n.incarnation !== e.incarnation) return; // timer of a crashed incarnation
        this.record(`timer ${e.node} ${JSON.stringify(e.timer)}`);
        n.role.onTimer(e.timer);
        this.afterStep(n);
        return;
      }
      case 'action':
        this.record(`action ${e.label}`);
        e.run();
        return;
      case 'scanned': {
        const n = this.simNode(e.node);
        if (n.role === undefined || n.incarnation !== e.incarnation) return; // a scan of a crashed incarnation
        const result = n.storage.scanSync(e.request);
        this.record(`scanned ${e.node} ${e.request.space} from ${JSON.stringify(e.request.gte)}: ${result?.entries.length ?? 'gone'}`);
        n.role.onScanned?.(e.request, result);
        this.afterStep(n);
        return;
      }
      default:
        assertNever(e, 'SimEvent');
    }
  }

  private start(n: SimNode<M, T>): void {
    n.role = n.factory(n.collector, n.storage.loadSpacesSync(n.preload));
    this.afterStep(n);
  }

  /** Drains the node's ready batch: persist (synced), then send, then arm timers. */
  private afterStep(n: SimNode<M, T>): void {
    assert(n.role !== undefined);
    n.role.checkInvariants?.();
    // Messages sent with sendNow leave first: in a real host they do not wait for the disk.
    for (const { to, message } of n.collector.takeUrgent()) this.transmit(n.id, to, message);
    const batch = n.collector.take();
    if (batch.writes.length > 0 || batch.mustSync) n.storage.writeSync(batch.writes, { sync: batch.mustSync });
    n.collector.settled(batch.gen);
    for (const request of batch.scans) {
      this.queue.push(this.clock + 1, { kind: 'scanned', node: n.id, incarnation: n.incarnation, request });
    }
    for (const id of batch.releases) n.storage.releaseSnapshot(id);
    for (const { to, message } of batch.messages) this.transmit(n.id, to, message);
    for (const { timer, afterMs } of batch.timers) {
      this.queue.push(this.clock + afterMs, { kind: 'timer', node: n.id, incarnation: n.incarnation, timer });
    }
  }

  private transmit(from: NodeId, to: NodeId, message: M): void {
    assert(this.nodes.has(to), `message to unknown node ${to}`);
    if (!this.connected(from, to) || this.netRng.chance(this.faults.lossRate)) return;
    const copies = this.netRng.chance(this.faults.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.netRng.int(this.faults.minDelayMs, this.faults.maxDelayMs);
      const copy = this.options.clone ? this.options.clone(message) : message;
      this.queue.push(this.clock + delay, { kind: 'deliver', from, to, message: copy });
    }
  }

  private connected(a: NodeId, b: NodeId): boolean {
    const sa = this.sides.get(a);
    const sb = this.sides.get(b);
    return sa === undefined || sb === undefined || sa === sb;
  }

  private collectorFor(id: NodeId, storage: MemoryStorage): ReadyCollector<M, T> {
    const nodeRng = this.rng.fork();
    return new ReadyCollector<M, T>(id, () => this.now, () => nodeRng.next(), (space, key) => storage.getSync(space, key));
  }

  private simNode(id: NodeId): SimNode<M, T> {
    const n = this.nodes.get(id);
    assert(n !== undefined, `unknown node ${id}`);
    return n;
  }

  private describe(m: M): string {
    return this.options.describe ? this.options.describe(m) : JSON.stringify(m);
  }

  private record(line: string): void {
    const text = `${this.clock} ${line}`;
    this.trace.update(`${text}\n`);
    this.recent.push(text.length > 200 ? `${text.slice(0, 200)}…` : text);
    if (this.recent.length > TRACE_LINES) this.recent.shift();
  }
}
