// Logs the invalid input a node dropped (src/core/drop-counter.ts), at most
// one line per interval: a peer that floods a node with bad frames must not
// flood its log too. Each line says how many were dropped since the last
// one, the counts by reason so far, and one drop as an example (the latest
// of the first counter that grew). The owner calls poll() often (every
// second); nothing is logged while nothing is dropped.
import type { DropCounter } from '../core/drop-counter.js';

export const DROP_LOG_INTERVAL_MS = 10_000;

export class DropLog {
  /** Each counter's total as of the last line. */
  private logged: readonly number[];
  private lastLineAtMs = -Infinity;

  constructor(
    /** Who dropped: the start of each line. */
    private readonly who: string,
    private readonly counters: readonly DropCounter[],
    private readonly write: (line: string) => void,
    private readonly intervalMs = DROP_LOG_INTERVAL_MS,
  ) {
    this.logged = counters.map(() => 0);
  }

  /** Writes a line if anything was dropped since the last one and that one is at least an interval old. */
  poll(nowMs: number): void {
    if (nowMs - this.lastLineAtMs < this.intervalMs) return;
    const grown = this.counters.filter((c, i) => c.total > (this.logged[i] ?? 0));
    if (grown.length === 0) return;
    const dropped = this.total() - this.logged.reduce((a, b) => a + b, 0);
    const since = Number.isFinite(this.lastLineAtMs) ? ` in the last ${Math.round((nowMs - this.lastLineAtMs) / 1000)} s` : '';
    const example = grown[0]?.latest;
    this.write(
      `${this.who}: dropped ${dropped} invalid input${dropped === 1 ? '' : 's'} from the network${since}` +
        ` (so far by reason: ${this.reasons()})` +
        (example === undefined ? '' : `; latest: ${example.reason}: ${example.detail}`),
    );
    this.logged = this.counters.map((c) => c.total);
    this.lastLineAtMs = nowMs;
  }

  private total(): number {
    return this.counters.reduce((sum, c) => sum + c.total, 0);
  }

  /** Every reason's count since start, summed over the counters. */
  private reasons(): string {
    const sum = new Map<string, number>();
    for (const c of this.counters) for (const [reason, n] of c.byReason()) sum.set(reason, (sum.get(reason) ?? 0) + n);
    return [...sum].map(([reason, n]) => `${reason} ${n}`).join(', ');
  }
}
