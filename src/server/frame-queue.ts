// The per-peer send queue of the gRPC transport, and how a frame is cut from
// it. Entries are already encoded (each message is encoded once, when it is
// queued), so the queue knows its exact size. It is bounded in messages and
// in bytes; past either bound the oldest entries are dropped, which the
// protocols tolerate like any lost message (DESIGN.md 1, STYLE.md "units and
// bounds"). No I/O here: the transport owns the streams.
import { assert } from '../core/assert.js';

export interface QueueBounds {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

/** What push() had to drop to stay within the bounds. */
export interface Dropped {
  readonly messages: number;
  readonly bytes: number;
}

const EMPTY = new Uint8Array(0);

/** A FIFO of encoded messages, oldest first, bounded in count and in bytes. */
export class MessageQueue {
  /** Taken entries are overwritten with EMPTY, so the array never keeps their bytes alive. */
  private items: Uint8Array[] = [];
  /** Index of the oldest entry in `items`; entries before it are taken. */
  private head = 0;
  private queuedBytes = 0;

  constructor(private readonly bounds: QueueBounds) {
    assert(Number.isSafeInteger(bounds.maxMessages) && bounds.maxMessages >= 1, 'queue bound: maxMessages >= 1');
    assert(Number.isSafeInteger(bounds.maxBytes) && bounds.maxBytes >= 1, 'queue bound: maxBytes >= 1');
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  /** The oldest entry, left in place. */
  peek(): Uint8Array | undefined {
    return this.items[this.head];
  }

  /** Appends `item`, then drops the oldest entries until both bounds hold again. */
  push(item: Uint8Array): Dropped {
    this.items.push(item);
    this.queuedBytes += item.length;
    let messages = 0;
    let bytes = 0;
    while (this.length > this.bounds.maxMessages || this.queuedBytes > this.bounds.maxBytes) {
      const oldest = this.shift();
      assert(oldest !== undefined);
      messages++;
      bytes += oldest.length;
    }
    return { messages, bytes };
  }

  /** Removes and returns the oldest entry. */
  shift(): Uint8Array | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    // Found by a heap snapshot: taken entries left in place kept up to 1024 large messages alive.
    this.items[this.head] = EMPTY;
    this.head++;
    this.queuedBytes -= item.length;
    // Reclaim the taken prefix once it is most of the array (amortized O(1) per entry).
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    assert(this.queuedBytes >= 0 && (this.length > 0 || this.queuedBytes === 0));
    return item;
  }
}

/** Entries up to this size (heartbeats and their answers, votes, Chosen) go ahead of bulk data. */
export const SMALL_ENTRY_BYTES = 1024;

/**
 * A peer's queue in two lanes: small messages leave before big ones queued
 * earlier. Behind a few MiB of 1 MiB values, a heartbeat or its answer would
 * wait seconds and the group would hold elections under load. The protocols
 * tolerate the reordering, as they do the network's. Each lane is bounded;
 * the small one to an eighth of the bytes.
 */
export class PeerQueue {
  private readonly small: MessageQueue;
  private readonly bulk: MessageQueue;

  constructor(bounds: QueueBounds) {
    this.small = new MessageQueue({ maxMessages: bounds.maxMessages, maxBytes: Math.max(1, Math.floor(bounds.maxBytes / 8)) });
    this.bulk = new MessageQueue(bounds);
  }

  get length(): number {
    return this.small.length + this.bulk.length;
  }

  get bytes(): number {
    return this.small.bytes + this.bulk.bytes;
  }

  peek(): Uint8Array | undefined {
    return this.small.peek() ?? this.bulk.peek();
  }

  push(item: Uint8Array): Dropped {
    return (item.length <= SMALL_ENTRY_BYTES ? this.small : this.bulk).push(item);
  }

  shift(): Uint8Array | undefined {
    return this.small.shift() ?? this.bulk.shift();
  }
}

/** What takeFrame takes from. */
type FrameSource = Pick<MessageQueue, 'peek' | 'shift'>;

/**
 * Takes the next frame's entries off the front of `queue`: as many as fit in
 * `maxMessages` and `maxBytes`, stopping before the first that would exceed
 * either. An entry larger than `maxBytes` on its own goes alone in its frame,
 * so a frame is never empty while the queue is not.
 */
export function takeFrame(queue: FrameSource, maxMessages: number, maxBytes: number): Uint8Array[] {
  assert(maxMessages >= 1 && maxBytes >= 1);
  const frame: Uint8Array[] = [];
  let bytes = 0;
  for (let next = queue.peek(); next !== undefined && frame.length < maxMessages; next = queue.peek()) {
    if (frame.length > 0 && bytes + next.length > maxBytes) break;
    queue.shift();
    frame.push(next);
    bytes += next.length;
  }
  return frame;
}
