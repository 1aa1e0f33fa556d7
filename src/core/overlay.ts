// A role's view of its own writes that are not on disk yet (DESIGN.md 3):
// between a step's persist() and the end of the storage write that carries
// it, a read must still see what the step wrote. The runtime notes every
// write under the generation of the ready batch it belongs to, and settles a
// generation once its storage write completed; reads fall through to the disk
// for everything else.
import type { StorageWrite } from './storage.js';

interface Entry {
  readonly value: Uint8Array | undefined;
  readonly gen: number;
}

interface PendingClear {
  readonly space: string;
  readonly prefix: string;
  readonly gen: number;
}

export type OverlayHit = { readonly hit: true; readonly value: Uint8Array | undefined } | { readonly hit: false };

const MISS: OverlayHit = { hit: false };

export class Overlay {
  private readonly entries = new Map<string, Entry>();
  private clears: PendingClear[] = [];

  note(w: StorageWrite, gen: number): void {
    switch (w.op) {
      case 'put':
        this.entries.set(entryKey(w.space, w.key), { value: w.value, gen });
        return;
      case 'del':
        this.entries.set(entryKey(w.space, w.key), { value: undefined, gen });
        return;
      case 'clear': {
        const from = entryKey(w.space, w.prefix);
        for (const k of this.entries.keys()) if (k.startsWith(from)) this.entries.delete(k);
        this.clears.push({ space: w.space, prefix: w.prefix, gen });
        return;
      }
      case 'snapshot':
        return;
    }
  }

  lookup(space: string, key: string): OverlayHit {
    const e = this.entries.get(entryKey(space, key));
    if (e !== undefined) return { hit: true, value: e.value };
    for (const c of this.clears) if (c.space === space && key.startsWith(c.prefix)) return { hit: true, value: undefined };
    return MISS;
  }

  /** Every write of generations up to `gen` is on disk (readable through getSync). */
  settle(gen: number): void {
    for (const [k, e] of this.entries) if (e.gen <= gen) this.entries.delete(k);
    if (this.clears.length > 0) this.clears = this.clears.filter((c) => c.gen > gen);
  }
}

function entryKey(space: string, key: string): string {
  return `${space}\u0000${key}`;
}
