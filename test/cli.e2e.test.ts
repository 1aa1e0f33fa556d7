// The command line end to end, as a user runs it: `shardpax dev` starts a
// local 3-node cluster and prints `ready`; put/get/status work against its
// cluster file; SIGTERM stops it and its servers; started again on the same
// folder it still has the data. And `dev` is honest (issue 7): against
// occupied ports (another dev's, or anyone's), a folder another dev runs on,
// a folder of another cluster or a folder that is not a dev folder, or with
// servers that die at start, it says so and exits non-zero without starting
// or writing anything (and never says `ready`).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

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
  readonly stderr: string;
}

/** Runs one `shardpax` command to completion. */
function cli(args: readonly string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    spawned.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`shardpax ${args.join(' ')} took over ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface StatusRow {
  node: string;
  group: number;
  address: string;
  pid: number;
  leader: boolean;
  decidedBelow: number;
  appliedBelow: number;
}

function isStatusRow(v: unknown): v is StatusRow {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.node === 'string' &&
    typeof r.group === 'number' &&
    typeof r.address === 'string' &&
    typeof r.pid === 'number' &&
    typeof r.leader === 'boolean' &&
    typeof r.decidedBelow === 'number' &&
    typeof r.appliedBelow === 'number'
  );
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
    const nodes: StatusRow[] = [];
    for (const r of rows) {
      expect(isStatusRow(r), JSON.stringify(r)).toBe(true);
      if (isStatusRow(r)) nodes.push(r);
    }
    for (const n of nodes) serverPids.add(n.pid);
    expect(nodes.map((n) => n.node).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(nodes.map((n) => n.address).sort()).toEqual([0, 1, 2].map((i) => `127.0.0.1:${port + i}`));
    expect(nodes.every((n) => n.group === 1)).toBe(true);
    expect(nodes.filter((n) => n.leader)).toHaveLength(1);
    const leader = nodes.find((n) => n.leader);
    expect(leader?.decidedBelow).toBeGreaterThanOrEqual(1); // at least the put
    expect(leader?.appliedBelow).toBeGreaterThanOrEqual(1);
    for (const n of nodes) expect(n.appliedBelow).toBeLessThanOrEqual(n.decidedBelow);
    expect(new Set(nodes.map((n) => n.pid)).size).toBe(REPLICAS);
    expect(nodes.map((n) => n.pid)).not.toContain(dev.child.pid);
    for (const n of nodes) expect(alive(n.pid)).toBe(true);
    expect(readyLine).toContain(`leader ${leader?.node ?? '?'}`);

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
    writeFileSync(other, JSON.stringify({ version: 1, clusterId: 'cluster-b', groups: [{ id: 1, nodes: otherNodes }] }));
    expect(await cli(['init', '--cluster', other, '--all'])).toMatchObject({ code: 0 });
    // ... but the folder's cluster.json names cluster-a.
    const json = JSON.stringify({ version: 1, clusterId: 'cluster-a', groups: [{ id: 1, nodes }] });
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
