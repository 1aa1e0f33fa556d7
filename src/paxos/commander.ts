// PMMC commander (section 3, fig. 5): phase 2 for one pvalue. Decided once a
// majority of acceptors answer with its own ballot; preempted by any answer
// carrying a higher one.
import { type Ballot, compareBallots, type NodeId } from '../core/ids.js';
import type { PValue } from './messages.js';

export type CommanderOutcome =
  | { readonly kind: 'waiting' }
  | { readonly kind: 'decided' }
  | { readonly kind: 'preempted'; readonly by: Ballot };

export class Commander {
  private readonly accepted = new Set<NodeId>();
  /** Tick at which P2a last went out; drives retransmission. */
  sentAtTick: number;

  constructor(
    readonly pvalue: PValue,
    private readonly majority: number,
    tick: number,
  ) {
    this.sentAtTick = tick;
  }

  /** The acceptors that answered with its ballot. */
  acceptedBy(): readonly NodeId[] {
    return [...this.accepted];
  }

  missing(acceptors: readonly NodeId[]): NodeId[] {
    return acceptors.filter((a) => !this.accepted.has(a));
  }

  onP2b(from: NodeId, b: Ballot): CommanderOutcome {
    const c = compareBallots(b, this.pvalue.ballot);
    if (c > 0) return { kind: 'preempted', by: b };
    if (c < 0) return { kind: 'waiting' };
    this.accepted.add(from);
    return this.accepted.size >= this.majority ? { kind: 'decided' } : { kind: 'waiting' };
  }
}
