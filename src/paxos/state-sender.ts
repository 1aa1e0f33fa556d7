// Sending side of a state transfer (DESIGN.md 3): serves a lagging replica
// the application's state, as of one applied slot, from a consistent storage
// snapshot, one chunk per request. The receiver pulls, so at most one chunk
// per transfer is in flight, and a chunk holds at most `maxChunkBytes`
// (or one entry): memory stays bounded on both sides whatever the state's size.
//
// A transfer is known by the receiver's id. A request for an id this sender
// does not know, other than a transfer's first, is answered TransferReset:
// the sender restarted or dropped it, and its snapshot is gone.
//
// Invariants: at most `maxTransfers` snapshots open; each served transfer
// answers only the peer that began it.
import { assert } from '../core/assert.js';
import type { NodeId, Slot } from '../core/ids.js';
import { mark } from '../core/marks.js';
import type { ScanRequest, ScanResult } from '../core/storage.js';
import type { PaxosMessage } from './messages.js';

export interface StateSenderConfig {
  readonly maxChunkBytes: number;
  readonly maxTransfers: number;
  /** A transfer not asked for anything in this many ticks is dropped. */
  readonly idleTicks: number;
}

export interface StateSenderPorts {
  send(to: NodeId, m: PaxosMessage): void;
  openSnapshot(): number;
  releaseSnapshot(id: number): void;
  scan(request: ScanRequest): void;
  /** The slot the stored state covers (every slot below it applied), or undefined while it is not whole. */
  wholeStateAt(): Slot | undefined;
}

interface Serving {
  readonly id: number;
  readonly peer: NodeId;
  readonly snapshot: number;
  readonly slot: Slot;
  lastTick: number;
}

export class StateSender {
  private readonly serving = new Map<number, Serving>();
  private tick = 0;

  constructor(
    private readonly spaces: readonly string[],
    private readonly config: StateSenderConfig,
    private readonly ports: StateSenderPorts,
  ) {
    assert(spaces.length > 0 && config.maxTransfers > 0 && config.maxChunkBytes > 0);
  }

  onRequest(from: NodeId, m: Extract<PaxosMessage, { type: 'TransferRequest' }>): void {
    let t = this.serving.get(m.id);
    if (t === undefined) {
      const at = this.ports.wholeStateAt();
      if (m.space !== this.spaces[0] || m.fromKey !== '' || at === undefined || !this.spaces.includes(m.space)) {
        mark('state sender resets an unknown transfer');
        this.ports.send(from, { type: 'TransferReset', id: m.id });
        return;
      }
      while (this.serving.size >= this.config.maxTransfers) this.drop(this.oldest());
      mark('state sender opens a snapshot');
      t = { id: m.id, peer: from, snapshot: this.ports.openSnapshot(), slot: at, lastTick: this.tick };
      this.serving.set(m.id, t);
    }
    if (t.peer !== from || !this.spaces.includes(m.space)) return;
    t.lastTick = this.tick;
    this.ports.scan({ snapshot: t.snapshot, space: m.space, gte: m.fromKey, maxBytes: this.config.maxChunkBytes });
  }

  onScanned(request: ScanRequest, result: ScanResult | undefined): void {
    const t = [...this.serving.values()].find((x) => x.snapshot === request.snapshot);
    if (t === undefined) return; // dropped meanwhile
    if (result === undefined) {
      this.drop(t);
      this.ports.send(t.peer, { type: 'TransferReset', id: t.id });
      return;
    }
    this.ports.send(t.peer, {
      type: 'TransferChunk',
      id: t.id,
      slot: t.slot,
      fromKey: request.gte,
      chunk: { space: request.space, entries: result.entries },
      next: result.next,
    });
  }

  onTick(): void {
    this.tick += 1;
    for (const t of [...this.serving.values()]) {
      if (this.tick - t.lastTick > this.config.idleTicks) {
        mark('state sender drops an idle transfer');
        this.drop(t);
      }
    }
  }

  /** `peer` is catching up after its transfer: keep the transfer (and the log it pins) a while longer. */
  touch(peer: NodeId): void {
    for (const t of this.serving.values()) if (t.peer === peer) t.lastTick = this.tick;
  }

  /** The lowest slot a served transfer's state covers: its receiver will catch up from there. Infinity if none. */
  lowestServedSlot(): number {
    let low = Infinity;
    for (const t of this.serving.values()) if (t.slot < low) low = t.slot;
    return low;
  }

  servingCount(): number {
    return this.serving.size;
  }

  checkInvariants(): void {
    assert(this.serving.size <= this.config.maxTransfers, 'too many open transfers');
  }

  private oldest(): Serving {
    let oldest: Serving | undefined;
    for (const t of this.serving.values()) if (oldest === undefined || t.lastTick < oldest.lastTick) oldest = t;
    assert(oldest !== undefined);
    return oldest;
  }

  private drop(t: Serving): void {
    this.serving.delete(t.id);
    this.ports.releaseSnapshot(t.snapshot);
  }
}
