// Decorator that makes any transport lossy and duplicating, seeded: lets
// real-process tests put the same faults on gRPC that the simulator puts on
// its network. Off unless a test or `--inject-faults` asks for it.
import { assert } from '../core/assert.js';
import type { NodeId } from '../core/ids.js';
import { Prng } from '../core/prng.js';
import type { Transport } from '../core/transport.js';

export interface InjectedFaults {
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly seed: number;
}

export class FaultyTransport<M> implements Transport<M> {
  private readonly rng: Prng;

  constructor(
    private readonly inner: Transport<M>,
    private readonly faults: InjectedFaults,
  ) {
    assert(faults.lossRate >= 0 && faults.lossRate < 1 && faults.duplicateRate >= 0 && faults.duplicateRate <= 1);
    this.rng = new Prng(faults.seed);
  }

  send(to: NodeId, messages: readonly M[]): void {
    const out: M[] = [];
    for (const m of messages) {
      if (this.rng.chance(this.faults.lossRate)) continue;
      out.push(m);
      if (this.rng.chance(this.faults.duplicateRate)) out.push(m);
    }
    if (out.length > 0) this.inner.send(to, out);
  }

  onReceive(handler: (from: NodeId, message: M) => void): void {
    this.inner.onReceive(handler);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
