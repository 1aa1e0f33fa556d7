// Makes LevelDB's silent recovery drops an error (issue 7, verified storage).
//
// classic-level 3 does not expose `paranoid_checks`, and without it LevelDB
// opens a folder whose write-ahead log fails a checksum by skipping the bad
// part (a whole 32 KiB block), replaying the rest, and deleting the log: the
// only trace is a line in `<dir>/LOG`, the info log it writes afresh at every
// open ("(ignoring error) …/000003.log: dropping 3072 bytes; Corruption:
// checksum mismatch"). So after open we read that LOG, and refuse to go on if
// LevelDB ignored anything. Because the damaged log is already gone by then,
// the refusal is written down (CORRUPTION_MARKER) so that every later start
// refuses too, until the folder is rebuilt.
//
// Before open: a folder with LevelDB's files but no CURRENT would be opened as
// a new, empty store (create_if_missing), losing everything silently.
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StorageCorruptionError } from '../core/storage.js';

/** Written into the data folder when a start found corruption; its text says what was found. */
export const CORRUPTION_MARKER = 'SHARDPAX-CORRUPTED';

/** LevelDB's own files: tables, write-ahead logs, manifests. */
const LEVELDB_FILE = /^(\d+\.(log|ldb|sst)|MANIFEST-\d+)$/;

/**
 * Lines LevelDB writes to LOG when it skipped data it could not read: log
 * records it dropped, and errors it ignored because paranoid_checks is off.
 */
const IGNORED_DAMAGE = /dropping \d+ bytes|ignoring error|corruption/i;

/** Refuses a folder that an earlier start found corrupted, or whose CURRENT file is gone. */
export function checkBeforeOpen(dir: string): void {
  const marker = join(dir, CORRUPTION_MARKER);
  if (existsSync(marker)) {
    throw new StorageCorruptionError(`an earlier start found it damaged: ${readFileSync(marker, 'utf8').trim()}`, { path: dir });
  }
  if (!existsSync(dir) || existsSync(join(dir, 'CURRENT'))) return;
  const files = readdirSync(dir).filter((f) => LEVELDB_FILE.test(f));
  if (files.length > 0) {
    throw new StorageCorruptionError(
      `LevelDB's CURRENT file is missing but the folder holds its other files (${files.slice(0, 5).join(', ')}); ` +
        'opening it would start an empty store',
      { path: join(dir, 'CURRENT') },
    );
  }
}

/** The lines of `<dir>/LOG` (written by the open that just completed) where LevelDB skipped damaged data. */
export function ignoredDamage(dir: string): string[] {
  const log = join(dir, 'LOG');
  // LevelDB creates LOG at every open, before it recovers anything: without it we cannot tell what it skipped.
  if (!existsSync(log)) throw new Error(`LevelDB wrote no info log at ${log}; cannot check what its recovery skipped`);
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => IGNORED_DAMAGE.test(line));
}

/** Records (synced) that this folder is corrupted, so later starts refuse it too. */
export function markCorrupted(dir: string, what: string): void {
  const fd = openSync(join(dir, CORRUPTION_MARKER), 'w');
  try {
    writeSync(fd, `${what}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const folder = openSync(dir, 'r');
  try {
    fsyncSync(folder); // the marker's directory entry
  } finally {
    closeSync(folder);
  }
}
