// PMMC scout (section 3, fig. 6): phase 1 for one ballot. Collects promises
// from a majority of acceptors; the merged pvalues (highest ballot per slot,
// "pmax") are what the adopted leader must re-propose. Any answer carrying a
// higher ballot preempts it.
import { type Ballot, compareBallots, type NodeId, type Slot, slot } from '../core/ids.js';
import type { PValue } from './messages.js';

export type ScoutOutcome =
  | { readonly kind: 'waiting' }
  | { readonly kind: 'adopted'; readonly pvalues: ReadonlyMap<Slot, PValue>; readonly compactedBelow: Slot }
  | { readonly kind: 'preempted'; readonly by: Ballot };

export class Scout {
  private readonly promised = new Set<NodeId>();
  private readonly pvalues = new Map<Slot, PValue>();
  private compactedBelow = slot(0);

  constructor(
    readonly ballot: Ballot,
    readonly fromSlot: Slot,
    private readonly majority: number,
  ) {}

  /** Acceptors yet to promise: those P1a goes (again) to. */
  missing(acceptors: readonly NodeId[]): NodeId[] {
    return acceptors.filter((a) => !this.promised.has(a));
  }

  onP1b(from: NodeId, b: Ballot, accepted: readonly PValue[], compactedBelow: Slot): ScoutOutcome {
    const c = compareBallots(b, this.ballot);
    if (c > 0) return { kind: 'preempted', by: b };
    if (c < 0) return { kind: 'waiting' }; // an answer to an older P1a of ours
    this.promised.add(from);
    for (const pv of accepted) {
      const held = this.pvalues.get(pv.slot);
      if (held === undefined || compareBallots(pv.ballot, held.ballot) > 0) this.pvalues.set(pv.slot, pv);
    }
    if (compactedBelow > this.compactedBelow) this.compactedBelow = compactedBelow;
    if (this.promised.size < this.majority) return { kind: 'waiting' };
    return { kind: 'adopted', pvalues: this.pvalues, compactedBelow: this.compactedBelow };
  }
}
