// Real processes (issue 7, verified storage): `shardpax server` on a damaged
// data folder stops with one clear line naming the folder and `--rebuild`,
// whether the damage is found when it starts (a damaged write-ahead log) or
// later, by a read (a flipped byte in a stored value); the other nodes keep
// serving the right value.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster, sleep } from '../src/cli/local-cluster.js';
import { connect } from '../src/client/db.js';

let cluster: LocalCluster | undefined;
let dir: string | undefined;

afterAll(async () => {
  await cluster?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Exit messages of nodes that stopped by themselves, in order. */
const exits: string[] = [];

/** Waits until node `id` exits by itself (code 1); the last lines of its log. */
async function exitOf(c: LocalCluster, id: string, timeoutMs: number): Promise<string> {
  const start = performance.now();
  for (;;) {
    const exit = exits.find((m) => m.startsWith(`node ${id} `));
    if (exit !== undefined) {
      expect(exit).toMatch(/exited \(code 1\)/);
      break;
    }
    if (performance.now() - start > timeoutMs) throw new Error(`node ${id} still runs after ${timeoutMs} ms:\n${c.logTails(20)}`);
    await sleep(100);
  }
  c.crashed = undefined; // expected: awaitLeader may go on with the others
  return (await readFile(c.logOf(id), 'utf8')).trimEnd().split('\n').slice(-5).join('\n');
}

/** Flips one byte of `file` at `offset`. */
async function flip(file: string, offset: number): Promise<void> {
  const bytes = await readFile(file);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x5a;
  await writeFile(file, bytes);
}

describe('shardpax server on damaged storage', () => {
  it('stops with a clear refusal, at start or at the read that finds it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'shardpax-corrupt-e2e-'));
    const { cluster: c } = await LocalCluster.create({ dir, replicas: 3 });
    cluster = c;
    const n1 = join(dir, 'n1');
    const n2 = join(dir, 'n2');
    // 8 KiB of random bytes: its own table blocks, stored literally, so it can be found in a file.
    const victim = randomBytes(8192);

    c.startAll();
    await c.awaitLeader(20_000);
    let db = await connect({ cluster: c.file, timeoutMs: 10_000 });
    for (let i = 0; i < 20; i++) await db.put(`k${i}`, `value ${i}`);
    await db.put('victim', victim);
    await db.close();
    await c.stop();

    // n1: a byte in the middle of its write-ahead log, which holds every write of that run.
    const logs = (await readdir(n1)).filter((f) => f.endsWith('.log'));
    expect(logs).toHaveLength(1);
    const log = join(n1, logs[0] ?? '');
    const size = (await readFile(log)).length;
    expect(size, `a write-ahead log with records in ${n1}`).toBeGreaterThan(10_000);
    await flip(log, Math.floor(size / 2));

    // n2 and n3 start and stop once more: their write-ahead logs become tables (*.ldb).
    ({ cluster } = await LocalCluster.create({ dir, replicas: 3 }));
    const c2 = cluster;
    c2.start('n2');
    c2.start('n3');
    await c2.awaitLeader(20_000);
    await c2.stop();

    // n2: one byte of the victim's stored value, in the table (the state space sorts last: its copy is the last).
    const tables = (await readdir(n2)).filter((f) => f.endsWith('.ldb'));
    let flipped = false;
    for (const t of tables) {
      const bytes = await readFile(join(n2, t));
      const at = bytes.lastIndexOf(victim.subarray(4000, 4064));
      if (at < 0) continue;
      await flip(join(n2, t), at + 30);
      flipped = true;
    }
    expect(flipped, `the victim value in one of ${tables.join(', ')}`).toBe(true);

    ({ cluster } = await LocalCluster.create({ dir, replicas: 3 }));
    const c3 = cluster;
    c3.onCrash = (message) => exits.push(message);
    c3.startAll();
    // n1 refuses to start: LevelDB dropped part of its log.
    const n1Says = await exitOf(c3, 'n1', 20_000);
    expect(n1Says).toContain(`node n1 (data folder ${n1}) stopped: corrupted storage in ${n1}`);
    expect(n1Says).toMatch(/dropping \d+ bytes/);
    expect(n1Says).toContain('shardpax server --rebuild');

    // n2 starts (its damage sits in one value), and stops at the first read of it; n3 answers right.
    await c3.awaitLeader(20_000);
    db = await connect({ cluster: c3.file, timeoutMs: 10_000 });
    try {
      const got = await Promise.race([db.get('victim'), exitOf(c3, 'n2', 20_000).then(() => undefined)]);
      if (got !== undefined) expect(Buffer.from(got).equals(victim)).toBe(true); // never the damaged bytes
      const n2Says = await exitOf(c3, 'n2', 20_000);
      expect(n2Says).toContain(`node n2 (data folder ${n2}) stopped: corrupted storage in ${n2}, space "state"`);
      expect(n2Says).toContain('checksum mismatch');
      expect(n2Says).toContain('shardpax server --rebuild');
    } finally {
      await db.close();
    }
  }, 120_000);
});
