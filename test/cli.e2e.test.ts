// The command line end to end, as a user runs it: `shardpax dev` starts a
// local 3-node cluster and prints `ready`; put/get/status work against its
// cluster file; SIGTERM stops it and its servers; started again on the same
// folder it still has the data. Then misuse (issue 7, finding 5): bytes that
// are not UTF-8 in arguments, values too large for an argument, a write
// without a quorum, and a cluster that is missing, unreachable or broken.
// And `dev` is honest (issue 7): against occupied ports (another dev's, or
// anyone's), a folder another dev runs on, a folder of another cluster or a
// folder that is not a dev folder, or with servers that die at start, it says
// so and exits non-zero without starting or writing anything (and never says
// `ready`).
import { randomBytes } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { clusterJson } from './support/cluster-file.js';

const BIN = new URL('../bin/shardpax.mjs', import.meta.url).pathname;
const REPLICAS = 3;

const dir = mkdtempSync(join(tmpdir(), 'shardpax-cli-'));
const file = join(dir, 'cluster.json');
const spawned: ChildProcess[] = [];
const serverPids = new Set<number>();

/** A `shardpax dev` process whose output is kept (for `ready` and for failure reports). */
class Dev {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    port: number,
    readonly folder = dir,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.child = spawn(process.execPath, [BIN, 'dev', '--dir', folder, '--port', String(port), '--replicas', String(REPLICAS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    spawned.push(this.child);
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves once stdout has a line starting with `ready`; rejects if the process ends first or after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.stdout.split('\n').find((l) => /^ready\b/.test(l));
      if (line !== undefined) return line;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`dev exited before ready\n${this.describe()}`);
      if (Date.now() > deadline) throw new Error(`dev not ready within ${timeoutMs} ms\n${this.describe()}`);
      await sleep(50);
    }
  }

  /** How the process ended, or undefined if it did not within `timeoutMs`. */
  async exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    return Promise.race([this.exited, sleep(timeoutMs).then(() => undefined)]);
  }

  describe(): string {
    const logs = existsSync(this.folder)
      ? readdirSync(this.folder)
          .filter((f) => f.endsWith('.log'))
          .map((f) => `--- ${f}\n${readFileSync(join(this.folder, f), 'utf8').slice(-2_000)}`)
      : [];
    return [`--- dev stdout\n${this.stdout}`, `--- dev stderr\n${this.stderr}`, ...logs].join('\n');
  }
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  /** stdout as bytes, for values that are not text. */
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

interface CliOptions {
  readonly timeoutMs?: number;
  /** Written to the command's stdin (closed at once when left out). */
  readonly input?: Uint8Array;
  /**
   * Pass the arguments through a shell's `printf %b`, so escapes such as
   * \0377 reach the command as raw bytes: Node's spawn passes only UTF-8.
   */
  readonly rawBytes?: boolean;
}

/** Runs one `shardpax` command to completion. */
function cli(args: readonly string[], o: CliOptions = {}): Promise<Run> {
  const timeoutMs = o.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const stdio = 'pipe';
    const child =
      o.rawBytes === true
        ? spawn('/bin/sh', ['-c', `exec "$0" "$1" ${args.map((_, i) => `"$(printf '%b' "\${${i + 2}}")"`).join(' ')}`, process.execPath, BIN, ...args], { stdio })
        : spawn(process.execPath, [BIN, ...args], { stdio });
    spawned.push(child);
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.end(o.input);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`shardpax ${args.join(' ')} took over ${timeoutMs} ms\nstdout: ${Buffer.concat(out).toString()}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr });
    });
  });
}

/** Runs `tasks`, at most `width` at a time (each CLI run costs a CPU-second of startup on this 2-core machine). */
async function inTurn<T>(tasks: ReadonlyArray<() => Promise<T>>, width: number): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < tasks.length; i += width) results.push(...(await Promise.all(tasks.slice(i, i + width).map((t) => t()))));
  return results;
}

/** The run, for a failed expectation's message. */
const show = (r: Run): string => JSON.stringify({ code: r.code, stdout: r.stdout.slice(0, 500), stderr: r.stderr });

interface GroupRow {
  group: number;
  leader: boolean;
  decidedBelow: number;
  appliedBelow: number;
}

interface StatusRow {
  node: string;
  address: string;
  pid: number;
  groups: GroupRow[];
}

function isGroupRow(v: unknown): v is GroupRow {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.group === 'number' && typeof r.leader === 'boolean' && typeof r.decidedBelow === 'number' && typeof r.appliedBelow === 'number'
  );
}

function isStatusRow(v: unknown): v is StatusRow {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.node === 'string' &&
    typeof r.address === 'string' &&
    typeof r.pid === 'number' &&
    Array.isArray(r.groups) &&
    r.groups.every(isGroupRow)
  );
}

/** A node's row as the replica of `group`; fails the test if it hosts none. */
function replicaRow(r: StatusRow, group: number): StatusRow & GroupRow {
  const g = r.groups.find((x) => x.group === group);
  if (g === undefined) throw new Error(`${r.node} hosts no replica of group ${group}: ${JSON.stringify(r)}`);
  return { ...r, ...g };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port p such that p..p+count-1 are all free on 127.0.0.1. */
async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let free = true;
    for (let i = 0; i < count && free; i++) free = await portFree(base + i);
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

afterAll(async () => {
  const waits: Array<Promise<unknown>> = [];
  for (const c of spawned) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    waits.push(new Promise((r) => c.once('exit', r)));
    c.kill('SIGKILL');
  }
  for (const pid of serverPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await Promise.race([Promise.all(waits), sleep(5_000)]);
  rmSync(dir, { recursive: true, force: true });
});

describe('shardpax CLI against `shardpax dev`', () => {
  it('dev, put, get, status, SIGTERM, restart with the data kept', { timeout: 45_000 }, async () => {
    const port = await freePortRange(REPLICAS);

    // 1. start the local cluster
    const dev = new Dev(port);
    const readyLine = await dev.ready(30_000);
    expect(readyLine).toContain(`${REPLICAS} nodes`);
    expect(dev.stdout).toContain(`created ${file}`);
    expect(existsSync(file)).toBe(true);

    // 2. put, get, get of a missing key
    const put = await cli(['put', 'a', '1', '--cluster', file]);
    expect(put, JSON.stringify(put)).toMatchObject({ code: 0 });
    const get = await cli(['get', 'a', '--cluster', file]);
    expect(get, JSON.stringify(get)).toMatchObject({ code: 0, stdout: '1' });
    const missing = await cli(['get', 'missing', '--cluster', file]);
    expect(missing, JSON.stringify(missing)).toMatchObject({ code: 2, stdout: '' });
    expect(missing.stderr).toContain('missing');

    // 3. status --json: three nodes, one leader, each its own process
    const status = await cli(['status', '--json', '--cluster', file]);
    expect(status.code, status.stderr).toBe(0);
    const rows: unknown = JSON.parse(status.stdout);
    expect(Array.isArray(rows)).toBe(true);
    if (!Array.isArray(rows)) return;
    expect(rows).toHaveLength(REPLICAS);
    const nodes: Array<StatusRow & GroupRow> = [];
    const whole: StatusRow[] = [];
    for (const r of rows) {
      expect(isStatusRow(r), JSON.stringify(r)).toBe(true);
      if (isStatusRow(r)) {
        whole.push(r);
        nodes.push(replicaRow(r, 1));
      }
    }
    // The local cluster's shape: every node hosts group 0 (the shard master) and KV groups 1-3, each with one leader.
    for (const r of whole) expect(r.groups.map((g) => g.group)).toEqual([0, 1, 2, 3]);
    for (const g of [0, 1, 2, 3]) expect(whole.filter((r) => replicaRow(r, g).leader), `leaders of group ${g}`).toHaveLength(1);
    for (const n of nodes) serverPids.add(n.pid);
    expect(nodes.map((n) => n.node).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(nodes.map((n) => n.address).sort()).toEqual([0, 1, 2].map((i) => `127.0.0.1:${port + i}`));
    expect(nodes.filter((n) => n.leader)).toHaveLength(1);
    const leader = nodes.find((n) => n.leader);
    expect(leader?.decidedBelow).toBeGreaterThanOrEqual(1); // at least the put
    expect(leader?.appliedBelow).toBeGreaterThanOrEqual(1);
    for (const n of nodes) expect(n.appliedBelow).toBeLessThanOrEqual(n.decidedBelow);
    expect(new Set(nodes.map((n) => n.pid)).size).toBe(REPLICAS);
    expect(nodes.map((n) => n.pid)).not.toContain(dev.child.pid);
    for (const n of nodes) expect(alive(n.pid)).toBe(true);
    expect(readyLine).toContain(` 1:${leader?.node ?? '?'} `);
    // Groups 1-3 joined at the shard master before `ready`.
    expect(readyLine).toContain('64 shards over groups 1, 2, 3: 22/21/21');
    const config = await cli(['config', '--json', '--cluster', file]);
    expect(config.code, config.stderr).toBe(0);
    expect(JSON.parse(config.stdout)).toMatchObject({ num: 3, groups: [{ id: 1, shards: 22 }, { id: 2, shards: 21 }, { id: 3, shards: 21 }] });

    // 3b. Issue 7's incident: a second dev on these ports (in a folder of its
    // own) or on this folder refuses at once; the running cluster is untouched.
    const elsewhere = join(mkdtempSync(join(tmpdir(), 'shardpax-cli-other-')), 'data');
    const intruder = new Dev(port, elsewhere);
    expect(await intruder.exit(20_000), intruder.describe()).toEqual({ code: 1, signal: null });
    expect(intruder.stdout).not.toMatch(/^ready/m);
    expect(intruder.stderr).toContain(`node n1: cannot listen on 127.0.0.1:${port} (EADDRINUSE): another process uses the port`);
    expect(existsSync(elsewhere)).toBe(false); // no cluster file pointing at the other cluster
    const twin = new Dev(port);
    expect(await twin.exit(20_000), twin.describe()).toEqual({ code: 1, signal: null });
    expect(twin.stdout).not.toMatch(/^ready/m);
    expect(twin.stderr).toContain(`node n1: data folder ${join(dir, 'n1')} is in use by another process (is n1 already running?)`);
    const still: unknown = JSON.parse((await cli(['status', '--json', '--cluster', file])).stdout);
    const pids = (rows: unknown) => (Array.isArray(rows) ? rows.filter(isStatusRow).map((r) => `${r.node}:${r.pid}`).sort() : []);
    expect(pids(still)).toEqual(pids(nodes));

    // 4. SIGTERM stops dev (exit 0) and its servers
    dev.child.kill('SIGTERM');
    const ended = await dev.exit(10_000);
    expect(ended, dev.describe()).toEqual({ code: 0, signal: null });
    for (const n of nodes) expect(alive(n.pid), `server ${n.node} (pid ${n.pid}) still runs`).toBe(false);

    // 5. dev again on the same folder: same cluster, data kept
    const again = new Dev(port);
    await again.ready(30_000);
    expect(again.stdout).toContain('using the existing cluster');
    const after = await cli(['get', 'a', '--cluster', file]);
    expect(after, JSON.stringify(after)).toMatchObject({ code: 0, stdout: '1' });

    const restarted = await cli(['status', '--json', '--cluster', file]);
    const rows2: unknown = JSON.parse(restarted.stdout);
    if (Array.isArray(rows2)) for (const r of rows2) if (isStatusRow(r)) serverPids.add(r.pid);

    again.child.kill('SIGTERM');
    expect(await again.exit(10_000), again.describe()).toEqual({ code: 0, signal: null });
  });
});

describe('misuse of the CLI against a running cluster', () => {
  let cluster: LocalCluster | undefined;
  const live = (): LocalCluster => {
    if (cluster === undefined) throw new Error('no cluster');
    return cluster;
  };
  const c = (): string[] => ['--cluster', live().file];

  beforeAll(async () => {
    cluster = (await LocalCluster.create({ replicas: 3 })).cluster;
    cluster.startAll();
    await cluster.awaitReady(30_000);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('bytes that are not UTF-8 in an argument are refused (they would merge keys); --hex and --base64 carry exact bytes', { timeout: 60_000 }, async () => {
    // Node turns \xff and \xfe alike into U+FFFD: before the fix both puts hit the key "bad\uFFFD".
    const [ff, fe] = await Promise.all([
      cli(['put', 'bad\\0377', 'one', ...c()], { rawBytes: true }),
      cli(['put', 'bad\\0376', 'two', ...c()], { rawBytes: true }),
    ]);
    for (const r of [ff, fe]) {
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toContain('U+FFFD');
      expect(r.stderr).toContain('--hex or --base64');
    }
    const value = await cli(['put', 'ok', 'v\\0377', ...c()], { rawBytes: true });
    expect(value.code, show(value)).toBe(1);
    expect(value.stderr).toContain('--value-file');
    const merged = await cli(['get', '--hex', '626164efbfbd', ...c()]); // "bad\uFFFD"
    expect(merged.code, show(merged)).toBe(2);

    // Keys are UTF-8 text on the wire: a hex key that is not UTF-8 is refused, not mangled.
    const notText = await cli(['put', '--hex', '626164ff', '01', ...c()]);
    expect(notText.code, show(notText)).toBe(1);
    expect(notText.stderr).toContain('not valid UTF-8');

    // Two keys that differ in one byte, and values with every awkward byte, round-trip exactly.
    const puts = await Promise.all([
      cli(['put', '--hex', '626164c3bf', '00ff0a0d', ...c()]), // "badÿ"
      cli(['put', '--hex', '626164c3be', 'efbbbf00', ...c()]), // "badþ"; the value starts with a BOM
      cli(['put', '--base64', 'YjY0', 'AP8K', ...c()]), // key "b64"
    ]);
    for (const r of puts) expect(r.code, show(r)).toBe(0);
    const [hex, sameAsText, other, b64, asText] = await Promise.all([
      cli(['get', '--hex', '626164c3bf', ...c()]),
      cli(['get', 'badÿ', ...c()]), // the same key, given as text
      cli(['get', '--base64', 'YmFkw74=', ...c()]),
      cli(['get', '--base64', 'YjY0', ...c()]),
      cli(['get', 'b64', ...c()]),
    ]);
    expect(hex.stdout).toBe('00ff0a0d\n');
    expect([...sameAsText.stdoutBytes]).toEqual([0x00, 0xff, 0x0a, 0x0d]);
    expect(other.stdout).toBe('77u/AA==\n');
    expect(b64.stdout).toBe('AP8K\n');
    expect([...asText.stdoutBytes]).toEqual([0x00, 0xff, 0x0a]); // no newline added when stdout is not a terminal

    const badHex = await cli(['put', '--hex', 'k', 'zz', ...c()]);
    expect(badHex.code, show(badHex)).toBe(1);
    expect(badHex.stderr).toContain('not hex');
    const both = await cli(['get', '--hex', '--base64', '6b', ...c()]);
    expect(both.code, show(both)).not.toBe(0);
  });

  it('a value up to the 1 MiB limit goes in from a file or stdin and comes out as the same bytes', { timeout: 60_000 }, async () => {
    const limit = 1 << 20;
    const bytes = randomBytes(limit);
    const file = join(live().dir, 'value.bin');
    writeFileSync(file, bytes);
    const [fromFile, fromStdin] = await Promise.all([
      cli(['put', 'from-file', '--value-file', file, ...c()]),
      cli(['put', 'from-stdin', '--stdin', ...c()], { input: bytes.subarray(0, limit - 7) }),
    ]);
    expect(fromFile.code, show(fromFile)).toBe(0);
    expect(fromStdin.code, show(fromStdin)).toBe(0);
    const [a, b, b64] = await Promise.all([
      cli(['get', 'from-file', ...c()]),
      cli(['get', 'from-stdin', ...c()]),
      cli(['get', '--base64', Buffer.from('from-file').toString('base64'), ...c()]),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdoutBytes.equals(bytes)).toBe(true);
    expect(b.stdoutBytes.equals(bytes.subarray(0, limit - 7))).toBe(true);
    expect(b64.stdout).toBe(`${bytes.toString('base64')}\n`);

    // One byte over the limit is refused before anything is sent; so is a file that is not there.
    const over = join(live().dir, 'over.bin');
    writeFileSync(over, randomBytes(limit + 1));
    const [tooBig, tooBigStdin, missing, none, two] = await Promise.all([
      cli(['put', 'too-big', '--value-file', over, ...c()]),
      cli(['put', 'too-big', '--stdin', ...c()], { input: randomBytes(limit + 1) }),
      cli(['put', 'k', '--value-file', join(live().dir, 'no-such-file'), ...c()]),
      cli(['put', 'k', ...c()]),
      cli(['put', 'k', 'v', '--stdin', ...c()]),
    ]);
    for (const r of [tooBig, tooBigStdin]) {
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toContain(`over ${limit} bytes`);
    }
    expect(missing.code, show(missing)).toBe(1);
    expect(missing.stderr).toContain('no-such-file');
    expect(none.code, show(none)).toBe(1);
    expect(none.stderr).toContain('needs a value');
    expect(two.code, show(two)).toBe(1);
    expect(two.stderr).toContain('one value');
    const absent = await cli(['get', 'too-big', ...c()]);
    expect(absent.code, show(absent)).toBe(2);
  });

  // Last in this block: it leaves the cluster without a quorum.
  it('a write without a quorum times out saying it may still apply (exit 3); a read just times out (exit 1)', { timeout: 60_000 }, async () => {
    const leader = (await live().awaitLeader(10_000)).id;
    const others = live().nodes.map((n) => n.id).filter((id) => id !== leader);
    for (const id of others) await live().kill(id); // the leader still answers status, but nothing can be decided
    const [put, del, get] = await Promise.all([
      cli(['put', 'no-quorum', 'v', '--timeout', '1500', ...c()]),
      cli(['del', 'no-quorum', '--timeout', '1500', ...c()]),
      cli(['get', 'no-quorum', '--timeout', '1500', ...c()]),
    ]);
    for (const [r, kind] of [
      [put, 'put'],
      [del, 'delete'],
    ] as const) {
      expect(r.code, show(r)).toBe(3);
      expect(r.stderr).toContain(`${kind} "no-quorum" timed out`);
      expect(r.stderr).toContain('may still take effect');
    }
    expect(get.code, show(get)).toBe(1);
    expect(get.stderr).toContain('timed out');
    expect(get.stderr).not.toContain('may still');
  });
});

describe('a cluster that is missing, unreachable or broken', () => {
  /** A cluster file of three nodes on ports where nothing listens. */
  async function downCluster(): Promise<string> {
    const ports = await freePortRange(3);
    const path = join(dir, `down-${ports}.json`);
    const nodes = [0, 1, 2].map((i) => ({ id: `n${i + 1}`, address: `127.0.0.1:${ports + i}`, dataDir: `down-${ports}-n${i + 1}` }));
    writeFileSync(path, JSON.stringify(clusterJson('down', nodes)));
    return path;
  }

  it('status exits 1 and says so when no node answers, after listing every node it tried', { timeout: 60_000 }, async () => {
    const down = await downCluster();
    const [text, json] = await Promise.all([cli(['status', '--cluster', down]), cli(['status', '--json', '--cluster', down])]);
    for (const r of [text, json]) {
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toContain(`no node of ${down} answered`);
    }
    expect(text.stdout.match(/unreachable/g)).toHaveLength(3);
    const rows: unknown = JSON.parse(json.stdout);
    expect(rows).toMatchObject([{ reachable: false }, { reachable: false }, { reachable: false }]);
  });

  it('every command exits 1 with a message that says what is wrong', { timeout: 90_000 }, async () => {
    const missing = join(dir, 'no-such-cluster.json');
    const down = await downCluster();
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, JSON.stringify(clusterJson('broken', [{ id: 'n1', address: '127.0.0.1:99999', dataDir: 'b' }])));

    const kv = [['put', 'k', 'v'], ['get', 'k'], ['del', 'k']];
    const all = [...kv, ['status'], ['server', '--node', 'n1']];
    const cases = [
      ...all.map((cmd) => ({ args: [...cmd, '--cluster', missing], says: [`no cluster file at ${missing}`, '--cluster <file>'] })),
      ...all.map((cmd) => ({ args: [...cmd, '--cluster', broken], says: [broken, 'nodes[0].address', '"99999"'] })),
      ...kv.map((cmd) => ({ args: [...cmd, '--cluster', down], says: [`cannot reach the cluster of ${down}`, 'connection refused', 'Is it running?'] })),
    ];
    const runs = await inTurn(cases.map((k) => () => cli(k.args)), 3);
    runs.forEach((r, i) => {
      const k = cases[i];
      if (k === undefined) return;
      expect(r.code, `shardpax ${k.args.join(' ')}: ${show(r)}`).toBe(1);
      for (const s of k.says) expect(r.stderr, `shardpax ${k.args.join(' ')}`).toContain(s);
    });
  });
});

describe('shardpax dev refuses what is not its own', () => {
  /** Runs a dev that must refuse: exit code 1, never `ready`; its stderr. */
  async function refused(d: Dev): Promise<string> {
    const ended = await d.exit(30_000);
    expect(ended, d.describe()).toEqual({ code: 1, signal: null });
    expect(d.stdout).not.toMatch(/^ready/m);
    return d.stderr;
  }

  it('an occupied port: nothing is written or started', { timeout: 30_000 }, async () => {
    const port = await freePortRange(REPLICAS);
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(port + 1, '127.0.0.1', r));
    try {
      const fresh = join(dir, 'occupied');
      const stderr = await refused(new Dev(port, fresh));
      expect(stderr).toContain(`cannot start a local cluster in ${fresh}`);
      expect(stderr).toContain(`node n2: cannot listen on 127.0.0.1:${port + 1} (EADDRINUSE)`);
      expect(stderr).not.toContain('node n1:');
      expect(existsSync(fresh)).toBe(false);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it("a folder whose nodes' storage belongs to another cluster, and a folder that is not a dev folder", { timeout: 30_000 }, async () => {
    const port = await freePortRange(REPLICAS);
    const foreign = join(dir, 'foreign');
    mkdirSync(foreign);
    const nodes = [1, 2, 3].map((i) => ({ id: `n${i}`, address: `127.0.0.1:${port + i - 1}`, dataDir: `n${i}` }));
    // The node folders are another cluster's (made by `init` from its file) ...
    const other = join(dir, 'other-cluster.json');
    const otherNodes = nodes.map((n) => ({ ...n, dataDir: join(foreign, n.dataDir) }));
    writeFileSync(other, JSON.stringify(clusterJson('cluster-b', otherNodes)));
    expect(await cli(['init', '--cluster', other, '--all'])).toMatchObject({ code: 0 });
    // ... but the folder's cluster.json names cluster-a.
    const json = JSON.stringify(clusterJson('cluster-a', nodes));
    writeFileSync(join(foreign, 'cluster.json'), json);
    const stderr = await refused(new Dev(port, foreign));
    for (const n of nodes) {
      expect(stderr).toContain(`node ${n.id}: data folder ${join(foreign, n.id)} belongs to cluster cluster-b, but ${join(foreign, 'cluster.json')} is cluster cluster-a`);
    }
    expect(readFileSync(join(foreign, 'cluster.json'), 'utf8')).toBe(json);
    expect(readdirSync(foreign).filter((f) => f.endsWith('.log'))).toEqual([]); // no server was started

    const notDev = join(dir, 'not-dev');
    mkdirSync(notDev);
    writeFileSync(join(notDev, 'notes.txt'), 'mine');
    expect(await refused(new Dev(port, notDev))).toContain('the folder holds files but no cluster.json');
    expect(readdirSync(notDev)).toEqual(['notes.txt']);
  });

  it('servers that die at start: dev says which and why, stops the others, exits 1', { timeout: 40_000 }, async () => {
    const port = await freePortRange(REPLICAS);
    // Every server refuses this tuning and exits at start; dev's own checks pass.
    const env = { ...process.env, SHARDPAX_TUNING: '{"noSuchKnob":1}' };
    const stderr = await refused(new Dev(port, join(dir, 'dying'), env));
    expect(stderr).toMatch(/the local cluster did not start: node n\d exited \(code 1\)/);
    expect(stderr).toContain('SHARDPAX_TUNING: unknown numeric knob "noSuchKnob"');
    for (let i = 0; i < REPLICAS; i++) expect(await portFree(port + i)).toBe(true); // nothing left running
  });
});
