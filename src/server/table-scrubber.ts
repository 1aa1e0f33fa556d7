// One background pass over a LevelDB folder's live tables at open, checking
// every block checksum (leveldb-table-check.ts): the check LevelDB would make
// with paranoid_checks, which classic-level does not let us ask for. In the
// background, not before open returns, because restart must not read the
// whole database (DESIGN.md 3); throttled, so that a pass over a large store
// does not starve the node it runs in. Tables are immutable once live; one
// that a compaction deleted meanwhile is skipped.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tableDamage } from './leveldb-table-check.js';

/**
 * Reads at most this many bytes a second. A pass costs about 5 s of a core
 * per GiB of tables (measured: reading plus CRC-32C in JS), so this keeps it
 * near 0.15 of a core, 32 s per GiB: three nodes restarting on two cores
 * still have room to elect and serve.
 */
export const SCRUB_BYTES_PER_SECOND = 32 * 1024 * 1024;

/** The table files LevelDB lists as live, from its `leveldb.sstables` property (" 5:35653[…]" per table). */
export function liveTables(sstables: string): number[] {
  return [...sstables.matchAll(/^\s*(\d+):\d+\[/gm)].map((m) => Number(m[1]));
}

export interface ScrubDamage {
  readonly file: string;
  readonly what: string;
}

export class TableScrubber {
  private stopped = false;
  /** Settles (never rejects) once the pass has ended: done, stopped, or at the first damage. */
  readonly done: Promise<ScrubDamage | undefined>;

  constructor(dir: string, tables: readonly number[], bytesPerSecond = SCRUB_BYTES_PER_SECOND) {
    this.done = this.run(dir, tables, bytesPerSecond);
  }

  /** Ends the pass after the table being checked. */
  stop(): Promise<unknown> {
    this.stopped = true;
    return this.done;
  }

  private async run(dir: string, tables: readonly number[], bytesPerSecond: number): Promise<ScrubDamage | undefined> {
    const start = performance.now();
    let bytes = 0;
    for (const n of tables) {
      if (this.stopped) return undefined;
      let table: { file: string; bytes: Uint8Array } | undefined;
      try {
        table = await readTable(dir, n);
      } catch (err) {
        return { file: join(dir, String(n).padStart(6, '0')), what: `cannot be read: ${err instanceof Error ? err.message : String(err)}` };
      }
      if (table === undefined) continue; // compacted away since it was listed
      const what = tableDamage(table.bytes);
      if (what !== undefined) return { file: table.file, what };
      bytes += table.bytes.length;
      const aheadMs = (bytes / bytesPerSecond) * 1000 - (performance.now() - start);
      await sleep(Math.max(0, aheadMs)); // at least a turn of the event loop between tables
    }
    return undefined;
  }
}

/** Table `n`: `<n>.ldb`, or `<n>.sst` as older LevelDB named them; undefined if neither exists. */
async function readTable(dir: string, n: number): Promise<{ file: string; bytes: Uint8Array } | undefined> {
  const base = String(n).padStart(6, '0');
  for (const ext of ['ldb', 'sst']) {
    const file = join(dir, `${base}.${ext}`);
    try {
      return { file, bytes: await readFile(file) };
    } catch (err) {
      if (!(err instanceof Error && 'code' in err && err.code === 'ENOENT')) throw err;
    }
  }
  return undefined;
}
