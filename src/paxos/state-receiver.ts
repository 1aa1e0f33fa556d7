// Receiving side of a state transfer (DESIGN.md 3). A replica whose peers
// dropped the log it needs clears its application state and pulls the
// peer's, space by space and chunk by chunk, from one consistent snapshot.
// The replica's meta records the transfer before the first clear, so a crash
// at any point restarts it from scratch, and nothing is applied or served
// until the last chunk is stored: a half-received state is never used.
//
// Each chunk must come from the same snapshot (same slot) and answer the
// request just sent (its echoed `fromKey`); anything else is a late
// duplicate and is ignored. Silence is retried, then the transfer restarts
// at another peer; so does a TransferReset (the sender lost its snapshot).
import { assert } from '../core/assert.js';
import type { NodeId, Slot } from '../core/ids.js';
import { mark } from '../core/marks.js';
import { clear, put, type StorageWrite } from '../core/storage.js';
import type { PaxosMessage } from './messages.js';

export interface TransferSpace {
  readonly name: string;
  /** Small spaces are also handed whole to the application when the transfer ends. */
  readonly small: boolean;
}

export interface StateReceiverConfig {
  /** Ticks without the requested chunk before the request goes again. */
  readonly retryTicks: number;
  /** Unanswered requests in a row before the transfer starts over at another peer. */
  readonly maxRetries: number;
}

export interface StateReceiverPorts {
  send(to: NodeId, m: PaxosMessage): void;
  persistUnsynced(...writes: StorageWrite[]): void;
  random(): number;
  /** Records, durably and before anything is cleared, that the stored state is partial. */
  begin(id: number): void;
  /** The state being received covers every slot below `at` (known from the first chunk). */
  covers(at: Slot): void;
  /** Slots below this were applied here before the transfer: a state older than that would go back in time. */
  appliedBefore(): Slot;
  /** Every space is stored: the state as of `at` is whole. `small` holds the small spaces' entries. */
  finish(at: Slot, small: ReadonlyMap<string, ReadonlyArray<readonly [string, Uint8Array]>>): void;
}

interface Receiving {
  readonly id: number;
  readonly peer: NodeId;
  space: number;
  fromKey: string;
  slot: Slot | undefined;
  readonly small: Map<string, Array<readonly [string, Uint8Array]>>;
  sentAtTick: number;
  retries: number;
}

export class StateReceiver {
  private current: Receiving | undefined;
  private tick = 0;
  /** The peer the last transfer came from, and when it finished: it keeps its log from that state on. */
  private last: { readonly peer: NodeId; readonly tick: number } | undefined;

  constructor(
    private readonly spaces: readonly TransferSpace[],
    private readonly config: StateReceiverConfig,
    private readonly ports: StateReceiverPorts,
  ) {
    assert(spaces.length > 0);
  }

  active(): boolean {
    return this.current !== undefined;
  }

  /** Peer the running transfer pulls from. */
  source(): NodeId | undefined {
    return this.current?.peer;
  }

  /** Where the running transfer stands: space index and key, for status and tests. */
  progress(): { space: string; fromKey: string } | undefined {
    const c = this.current;
    if (c === undefined) return undefined;
    const s = this.spaces[c.space];
    assert(s !== undefined);
    return { space: s.name, fromKey: c.fromKey };
  }

  /**
   * The peer to catch up from right after a transfer: the one that sent it,
   * which keeps its log from the transferred slot on while it remembers the
   * transfer (its idle timeout); other peers may have dropped that part.
   */
  catchupSource(withinTicks: number): NodeId | undefined {
    return this.last !== undefined && this.tick - this.last.tick <= withinTicks ? this.last.peer : undefined;
  }

  /** The transfer's sender has nothing past what we hold: ask the others (it may have lost its log tail). */
  forgetCatchupSource(): void {
    this.last = undefined;
  }

  /** Starts (or starts over) a transfer from `peer`: the stored state is cleared first. */
  start(peer: NodeId): void {
    mark('state receiver starts a transfer');
    const id = 1 + Math.floor(this.ports.random() * (2 ** 53 - 2));
    this.ports.begin(id);
    for (const s of this.spaces) this.ports.persistUnsynced(clear(s.name, ''));
    this.current = { id, peer, space: 0, fromKey: '', slot: undefined, small: new Map(), sentAtTick: this.tick, retries: 0 };
    this.request();
  }

  onChunk(from: NodeId, m: Extract<PaxosMessage, { type: 'TransferChunk' }>, peers: readonly NodeId[]): void {
    const c = this.current;
    const expected = c === undefined ? undefined : this.spaces[c.space];
    if (c === undefined || expected === undefined || m.id !== c.id || from !== c.peer) return;
    if (m.chunk.space !== expected.name || m.fromKey !== c.fromKey) {
      mark('state receiver ignores a duplicate chunk');
      return;
    }
    if (c.slot === undefined) {
      if (m.slot < this.ports.appliedBefore()) {
        // A sender that lost its disk and is rebuilding holds an empty state at slot 0, say.
        mark('state receiver refuses a state older than its own');
        this.start(this.other(peers, from));
        return;
      }
      c.slot = m.slot;
      this.ports.covers(m.slot);
    }
    if (c.slot !== m.slot) {
      mark('state receiver sees another snapshot and starts over');
      this.start(from);
      return;
    }
    this.ports.persistUnsynced(...m.chunk.entries.map(([k, v]) => put(expected.name, k, v)));
    if (expected.small) {
      let list = c.small.get(expected.name);
      if (list === undefined) c.small.set(expected.name, (list = []));
      // Own copies: the entries view the chunk's whole frame.
      for (const [k, v] of m.chunk.entries) list.push([k, v.slice()]);
    }
    c.retries = 0;
    if (m.next !== undefined) {
      c.fromKey = m.next;
    } else if (c.space + 1 < this.spaces.length) {
      c.space += 1;
      c.fromKey = '';
    } else {
      this.current = undefined;
      this.last = { peer: c.peer, tick: this.tick };
      this.ports.finish(c.slot, c.small);
      return;
    }
    this.request();
  }

  onReset(from: NodeId, m: Extract<PaxosMessage, { type: 'TransferReset' }>, peers: readonly NodeId[]): void {
    const c = this.current;
    if (c === undefined || m.id !== c.id || from !== c.peer) return;
    mark('state receiver starts over after a reset');
    this.start(this.other(peers, c.peer));
  }

  onTick(peers: readonly NodeId[]): void {
    this.tick += 1;
    const c = this.current;
    if (c === undefined || this.tick - c.sentAtTick < this.config.retryTicks) return;
    c.retries += 1;
    if (c.retries > this.config.maxRetries) {
      mark('state receiver gives up on a silent peer');
      this.start(this.other(peers, c.peer));
      return;
    }
    this.request();
  }

  private request(): void {
    const c = this.current;
    assert(c !== undefined);
    const space = this.spaces[c.space];
    assert(space !== undefined);
    c.sentAtTick = this.tick;
    this.ports.send(c.peer, { type: 'TransferRequest', id: c.id, space: space.name, fromKey: c.fromKey });
  }

  /** Another peer than `not`, if there is one. */
  private other(peers: readonly NodeId[], not: NodeId): NodeId {
    const others = peers.filter((p) => p !== not);
    const pick = others[Math.floor(this.ports.random() * others.length)];
    return pick ?? not;
  }
}
