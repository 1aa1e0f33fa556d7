// Child process for the LevelStorage SIGKILL test (test/storage.test.ts):
// creates LevelStorage in <dir> and issues <count> synced writes, one after
// another with no pause, so a kill lands inside a write. Write i is one call
// of <ops> puts spread over spaces 'a' and 'b' (see writerBatch); the child
// prints "i\n" only after write i resolved. After the last one it stays alive
// until killed, so the parent's SIGKILL always lands.
//
// Usage: node --import tsx test/support/level-writer.ts <dir> <count> <ops> <valueBytes>
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { indexKey, put, type StorageWrite } from '../../src/core/storage.js';
import { LevelStorage } from '../../src/server/level-storage.js';

export const WRITER_SPACES: readonly string[] = ['a', 'b'];

/** Write `i`: op j puts key "<i>/<j>" (both indexKeys) into 'a' or 'b', value bytes all (i + j) mod 256. */
export function writerBatch(i: number, ops: number, valueBytes: number): StorageWrite[] {
  const writes: StorageWrite[] = [];
  for (let j = 0; j < ops; j++) {
    const value = new Uint8Array(valueBytes).fill((i + j) % 256);
    writes.push(put(j % 2 === 0 ? 'a' : 'b', `${indexKey(i)}/${indexKey(j)}`, value));
  }
  return writes;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).map(String);
  const [dir, count, ops, valueBytes] = args;
  if (dir === undefined || count === undefined || ops === undefined || valueBytes === undefined) {
    throw new Error('usage: level-writer.ts <dir> <count> <ops> <valueBytes>');
  }
  const storage = await LevelStorage.create(dir, WRITER_SPACES);
  for (let i = 0; i < Number(count); i++) {
    await storage.write(writerBatch(i, Number(ops), Number(valueBytes)), { sync: true });
    // stdout to a pipe is synchronous on Linux: the ack is out before the next write starts.
    process.stdout.write(`${i}\n`);
  }
  process.stdout.write('done\n');
  setInterval(() => {}, 1 << 30); // wait for the kill
}

// Only when run as a script: the test imports WRITER_SPACES and writerBatch.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
