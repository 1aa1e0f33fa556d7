// PMMC scout (section 3, fig. 6): phase 1 for one ballot. Collects promises
// from a majority of acceptors; the merged pvalues (highest ballot per slot,
// "pmax") are what the adopted leader must re-propose. Any answer carrying a
// higher ballot preempts it.
//
// An acceptor's answer comes in pages bounded in bytes. It counts towards the
// majority only once every page from `fromSlot` on has arrived: a scout that
// missed an accepted value could fill a decided slot with another. Pages can
// be taken as they come because the acceptor promised this ballot before the
// first: it accepts nothing below it in between, and anything above it shows
// up as a higher ballot in the next page.
import { type Ballot, compareBallots, type NodeId, type Slot, slot } from '../core/ids.js';
import type { PaxosMessage, PValue } from './messages.js';

export type ScoutOutcome =
  | { readonly kind: 'waiting' }
  /** The acceptor has more to say: ask it again from `from`. */
  | { readonly kind: 'more'; readonly from: Slot }
  | { readonly kind: 'adopted'; readonly pvalues: ReadonlyMap<Slot, PValue>; readonly compactedBelow: Slot }
  | { readonly kind: 'preempted'; readonly by: Ballot };

type P1b = Extract<PaxosMessage, { type: 'P1b' }>;

export class Scout {
  private readonly promised = new Set<NodeId>();
  /** Per acceptor still answering: every page below this slot has arrived. */
  private readonly received = new Map<NodeId, Slot>();
  private readonly pvalues = new Map<Slot, PValue>();
  private compactedBelow = slot(0);

  constructor(
    readonly ballot: Ballot,
    readonly fromSlot: Slot,
    private readonly majority: number,
  ) {}

  /** Acceptors that promised, every page of their answer in. */
  promisers(): ReadonlySet<NodeId> {
    return this.promised;
  }

  /** Acceptors yet to promise, with the slot P1a asks them from (again). */
  missing(acceptors: readonly NodeId[]): Array<readonly [NodeId, Slot]> {
    return acceptors.filter((a) => !this.promised.has(a)).map((a) => [a, this.received.get(a) ?? this.fromSlot] as const);
  }

  onP1b(from: NodeId, m: P1b): ScoutOutcome {
    const c = compareBallots(m.ballot, this.ballot);
    if (c > 0) return { kind: 'preempted', by: m.ballot };
    if (c < 0 || this.promised.has(from)) return { kind: 'waiting' }; // an answer to an older P1a of ours
    const received = this.received.get(from) ?? this.fromSlot;
    // A page that does not join what arrived (a late duplicate, or one past a lost page) is not counted.
    if (m.fromSlot > received) return { kind: 'waiting' };
    for (const pv of m.accepted) {
      if (pv.slot < this.fromSlot) continue;
      const held = this.pvalues.get(pv.slot);
      if (held === undefined || compareBallots(pv.ballot, held.ballot) > 0) this.pvalues.set(pv.slot, pv);
    }
    if (m.compactedBelow > this.compactedBelow) this.compactedBelow = m.compactedBelow;
    if (m.next !== undefined) {
      if (m.next <= received) return { kind: 'waiting' };
      this.received.set(from, m.next);
      return { kind: 'more', from: m.next };
    }
    this.received.delete(from);
    this.promised.add(from);
    if (this.promised.size < this.majority) return { kind: 'waiting' };
    return { kind: 'adopted', pvalues: this.pvalues, compactedBelow: this.compactedBelow };
  }
}
