// A cluster of server processes on this machine: the cluster file, one
// `shardpax server` child per node (log in <dir>/<node>.log), status polling,
// SIGKILL and restart of single nodes, and an orderly stop. Used by
// `shardpax dev`, the real-process tests and the benchmarks.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchStatus, type NodeStatus } from '../client/admin.js';
import { loadClusterConfig } from '../runtime/cluster-config.js';

const BIN = fileURLToPath(new URL('../../bin/shardpax.mjs', import.meta.url));
const STOP_GRACE_MS = 5_000;

export interface LocalClusterOptions {
  /** Folder for cluster.json, data and logs; a temp folder (removed by stop()) when left out. */
  readonly dir?: string;
  readonly replicas: number;
  /** Node i listens on basePort + i; free ports are picked when left out. */
  readonly basePort?: number;
}

export class LocalCluster {
  readonly file: string;
  private readonly procs = new Map<string, ChildProcess>();
  private stopping: Promise<void> | undefined;
  /** Set when a node exits without being asked to. */
  crashed: string | undefined;
  /** Called when a node exits without being asked to. */
  onCrash: (message: string) => void = () => {};

  private constructor(
    readonly dir: string,
    private readonly ownsDir: boolean,
    readonly nodes: ReadonlyArray<{ readonly id: string; readonly address: string }>,
  ) {
    this.file = join(dir, 'cluster.json');
  }

  /** Reuses `<dir>/cluster.json` when it exists (and so the data); writes one otherwise. */
  static async create(o: LocalClusterOptions): Promise<{ cluster: LocalCluster; created: boolean }> {
    const dir = o.dir === undefined ? mkdtempSync(join(tmpdir(), 'shardpax-')) : resolve(o.dir);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'cluster.json');
    const created = !existsSync(file);
    if (created) {
      const nodes = [];
      for (let i = 0; i < o.replicas; i++) {
        const port = o.basePort === undefined ? await freePort() : o.basePort + i;
        nodes.push({ id: `n${i + 1}`, address: `127.0.0.1:${port}`, dataDir: `n${i + 1}` });
      }
      writeFileSync(file, JSON.stringify({ version: 1, clusterId: randomUUID(), groups: [{ id: 1, nodes }] }, null, 2) + '\n');
    }
    const nodes = loadClusterConfig(file).groups.flatMap((g) => g.nodes.map((n) => ({ id: n.id, address: n.address })));
    return { cluster: new LocalCluster(dir, o.dir === undefined, nodes), created };
  }

  logOf(id: string): string {
    return join(this.dir, `${id}.log`);
  }

  start(id: string): void {
    const log = openSync(this.logOf(id), 'a');
    // SHARDPAX_SERVER_NODE_ARGS passes flags to each server's node (e.g. `--cpu-prof --cpu-prof-dir=prof`).
    const nodeArgs = (process.env.SHARDPAX_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const child = spawn(process.execPath, [...nodeArgs, BIN, 'server', '--cluster', this.file, '--node', id], {
      stdio: ['ignore', log, log],
    });
    const crash = (message: string) => {
      if (this.stopping !== undefined || this.procs.get(id) !== child) return;
      this.crashed ??= message;
      this.onCrash(message);
    };
    child.on('error', (err) => crash(`node ${id}: ${err.message}`));
    child.on('exit', (code, signal) => crash(`node ${id} exited (${signal ?? `code ${code}`}); see ${this.logOf(id)}`));
    this.procs.set(id, child);
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n.id);
  }

  pid(id: string): number {
    const pid = this.procs.get(id)?.pid;
    if (pid === undefined) throw new Error(`node ${id} has no process`);
    return pid;
  }

  /** Power-cuts a node (SIGKILL) and waits until its process is gone. */
  async kill(id: string): Promise<void> {
    const p = this.procs.get(id);
    if (p === undefined) return;
    this.procs.delete(id);
    if (p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  async status(id: string, timeoutMs = 1_000): Promise<NodeStatus | undefined> {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return fetchStatus(n.address, timeoutMs).catch(() => undefined);
  }

  /** Status of every node that answers within `timeoutMs`. */
  async statuses(timeoutMs: number): Promise<Map<string, NodeStatus>> {
    const got = await Promise.all(this.nodes.map((n) => this.status(n.id, timeoutMs)));
    return new Map(got.flatMap((s) => (s === undefined ? [] : [[s.node, s]])));
  }

  /** Polls until a node (not in `except`) leads; its id and how long that took. */
  async awaitLeader(timeoutMs: number, except: readonly string[] = []): Promise<{ id: string; ms: number }> {
    const start = performance.now();
    while (performance.now() - start < timeoutMs) {
      if (this.crashed !== undefined) throw new Error(this.crashed);
      for (const s of (await this.statuses(300)).values()) {
        if (s.leader && !except.includes(s.node)) return { id: s.node, ms: performance.now() - start };
      }
      await sleep(50);
    }
    throw new Error(`no leader within ${timeoutMs} ms; see the logs in ${this.dir}`);
  }

  /** Last lines of every node's log, for error reports. */
  logTails(lines: number): string {
    return this.nodes
      .map((n) => {
        const text = existsSync(this.logOf(n.id)) ? readFileSync(this.logOf(n.id), 'utf8') : '(no log)';
        return `--- ${n.id}.log\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
      })
      .join('\n');
  }

  /** SIGTERM every node, SIGKILL after a grace period; removes a temp folder. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= Promise.all([...this.procs.values()].map(stopChild)).then(() => {
      if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
    });
    return this.stopping;
  }

  /** Last resort on exit: synchronous SIGKILL of every node and cleanup. */
  killNow(): void {
    for (const child of this.procs.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(force);
      done();
    });
    child.kill('SIGTERM');
  });
}

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => done(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
