// Input from the network that failed validation is dropped, never asserted on
// (assert.ts is for our own bugs): the code that drops it counts it here, by
// reason, and keeps the latest one as an example for the log. Plain data, no
// I/O: protocol roles count in it too, and the edge logs from it
// (src/server/drop-log.ts). Reasons are a few fixed codes, so the counter
// stays small whatever a peer sends; what varies goes in the detail.
import { mark } from './marks.js';

/** An example detail is cut to this many characters: it may quote what a peer sent. */
const MAX_DETAIL_CHARS = 240;

export interface DroppedInput {
  readonly reason: string;
  readonly detail: string;
}

export class DropCounter {
  private readonly counts = new Map<string, number>();
  private sum = 0;
  private last: DroppedInput | undefined;

  /** One invalid input dropped: `reason` is a fixed code (kebab-case), `detail` says what was wrong with it. */
  count(reason: string, detail: string): void {
    mark('invalid input dropped');
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.sum += 1;
    this.last = { reason, detail: detail.length > MAX_DETAIL_CHARS ? `${detail.slice(0, MAX_DETAIL_CHARS)}...` : detail };
  }

  get total(): number {
    return this.sum;
  }

  /** The most recent drop, if any. */
  get latest(): DroppedInput | undefined {
    return this.last;
  }

  byReason(): ReadonlyMap<string, number> {
    return this.counts;
  }
}
