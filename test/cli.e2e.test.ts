// The command line end to end, as a user runs it: `shardpax dev` starts a
// local 3-node cluster and prints `ready`; put/get/status work against its
// cluster file; SIGTERM stops it and its servers; started again on the same
// folder it still has the data.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
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

  constructor(port: number) {
    this.child = spawn(process.execPath, [BIN, 'dev', '--dir', dir, '--port', String(port), '--replicas', String(REPLICAS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
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
    const logs = existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.endsWith('.log'))
          .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').slice(-2_000)}`)
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
