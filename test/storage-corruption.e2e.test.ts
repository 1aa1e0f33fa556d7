// Real processes (issue 7, verified storage): `shardpax server` on a damaged
// data folder stops with one clear line naming the folder and `--rebuild`,
// whether the damage is found when it starts (a damaged write-ahead log), by
// a read (a stored value that fails its checksum), or by the background check
// of every table block (a flipped byte in a table); a client never gets
// damaged bytes.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, describe, expect, it } from 'vitest';
import { assert } from '../src/core/assert.js';
import { DEFAULT_SHARDS, LocalCluster, sleep } from '../src/cli/local-cluster.js';
import { connect } from '../src/client/db.js';
import { shardPrefix } from '../src/paxos/group-server.js';
import { loadKeySharder } from '../src/shardmaster/key-shard.js';

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
  it('stops with a clear refusal: at start, at the read that finds it, or when the table check does', async () => {
    dir = await mkdtemp(join(tmpdir(), 'shardpax-corrupt-e2e-'));
    const { cluster: c } = await LocalCluster.create({ dir, replicas: 3 });
    cluster = c;
    const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((n) => join(dir ?? '', n));
    assert(n1 !== undefined && n2 !== undefined && n3 !== undefined);
    const victim = randomBytes(1024);
    // Where the KV application stores it: under its shard's prefix (the SDK routes it to that shard).
    const victimKey = `${shardPrefix((await loadKeySharder(DEFAULT_SHARDS)).shardOf('victim'))}d/victim`;

    c.startAll();
    await c.awaitReady(20_000);
    let db = await connect({ cluster: c.file, timeoutMs: 10_000 });
    for (let i = 0; i < 60; i++) await db.put(`k${i}`, `value ${i}`);
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

    // n2: the victim's stored value changed through LevelDB itself: its files stay sound, only the value's checksum can tell.
    const raw = new ClassicLevel<string, Uint8Array>(n2, { valueEncoding: 'view' });
    await raw.open();
    const stored = await raw.get(`!g1.state!${victimKey}`);
    expect(stored, 'the victim under its state key').toBeDefined();
    const damaged = new Uint8Array(stored ?? []);
    damaged[damaged.length - 100] = (damaged[damaged.length - 100] ?? 0) ^ 1;
    await raw.put(`!g1.state!${victimKey}`, damaged);
    await raw.close();

    ({ cluster } = await LocalCluster.create({ dir, replicas: 3 }));
    const c2 = cluster;
    c2.onCrash = (message) => exits.push(message);
    c2.startAll();
    // n1 refuses to start: LevelDB dropped part of its log.
    const n1Says = await exitOf(c2, 'n1', 20_000);
    // Refused while opening its storage: the refusal names the node, its folder and what LevelDB dropped.
    expect(n1Says).toContain(`node n1: data folder ${n1} holds no LevelDB store that opens`);
    expect(n1Says).toContain(`corrupted storage in ${n1}`);
    expect(n1Says).toMatch(/dropping \d+ bytes/);
    expect(n1Says).toContain('shardpax server --rebuild');

    // n2 starts and stops at the first read of the damaged value (every replica applies a read).
    await c2.awaitLeader(20_000);
    db = await connect({ cluster: c2.file, timeoutMs: 5_000 });
    try {
      const got = await Promise.race([db.get('victim').catch(() => undefined), exitOf(c2, 'n2', 20_000).then(() => undefined)]);
      if (got !== undefined) expect(Buffer.from(got).equals(victim)).toBe(true); // never the damaged bytes
      const n2Says = await exitOf(c2, 'n2', 20_000);
      expect(n2Says).toContain(`node n2 (data folder ${n2}) stopped: corrupted storage in ${n2}, space "g1.state", key "${victimKey}": checksum mismatch`);
      expect(n2Says).toContain('shardpax server --rebuild');
    } finally {
      await db.close();
    }
    await c2.stop();

    // n3: a byte in a table (its last run's log became one at its start); the background table check finds it.
    // Inside the victim's value (random bytes: snappy stores them as they are), not in the identity
    // record, which has its own check and would refuse the start instead.
    let table = '';
    let at = -1;
    for (const f of (await readdir(n3)).filter((name) => name.endsWith('.ldb'))) {
      at = (await readFile(join(n3, f))).indexOf(victim.subarray(100, 132));
      table = join(n3, f);
      if (at >= 0) break;
    }
    expect(at, `the victim's bytes in a table of ${n3}`).toBeGreaterThan(0);
    await flip(table, at + 2);
    ({ cluster } = await LocalCluster.create({ dir, replicas: 3 }));
    const c3 = cluster;
    c3.onCrash = (message) => exits.push(message);
    exits.length = 0;
    c3.start('n3');
    const n3Says = await exitOf(c3, 'n3', 20_000);
    // Found by the table check: in the node's first run, or already when dev looked at its storage.
    expect(n3Says).toContain(`corrupted storage in ${n3}: table ${table}`);
    expect(n3Says).toContain('checksum mismatch');
    expect(n3Says).toContain('shardpax server --rebuild');
  }, 120_000);
});
