// Real-process cluster fixture: a cluster file on free loopback ports, server
// processes (bin/shardpax.mjs server) started, SIGKILLed and restarted, and
// status polling.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchStatus, type NodeStatus } from '../../src/client/admin.js';

const BIN = new URL('../../bin/shardpax.mjs', import.meta.url).pathname;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export class TestCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'shardpax-cluster-'));
  readonly file = join(this.dir, 'cluster.json');
  private readonly procs = new Map<string, ChildProcess>();

  private constructor(readonly nodes: ReadonlyArray<{ id: string; address: string }>) {
    const spec = { version: 1, groups: [{ id: 1, nodes: nodes.map((n) => ({ ...n, dataDir: n.id })) }] };
    writeFileSync(this.file, JSON.stringify(spec));
  }

  static async create(replicas: number): Promise<TestCluster> {
    const nodes = [];
    for (let i = 1; i <= replicas; i++) nodes.push({ id: `n${i}`, address: `127.0.0.1:${await freePort()}` });
    return new TestCluster(nodes);
  }

  start(id: string): void {
    const log = openSync(join(this.dir, `${id}.log`), 'a');
    const child = spawn(process.execPath, [BIN, 'server', '--cluster', this.file, '--node', id], {
      stdio: ['ignore', log, log],
    });
    this.procs.set(id, child);
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n.id);
  }

  /** Power-cut a node: SIGKILL, and wait until the process is gone. */
  async kill(id: string): Promise<void> {
    const p = this.procs.get(id);
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
    this.procs.delete(id);
  }

  async status(id: string, timeoutMs = 1000): Promise<NodeStatus | undefined> {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return fetchStatus(n.address, timeoutMs).catch(() => undefined);
  }

  /** Polls until some live node (not in `except`) leads; returns its id and how long that took. */
  async awaitLeader(timeoutMs: number, except: readonly string[] = []): Promise<{ id: string; ms: number }> {
    const start = performance.now();
    while (performance.now() - start < timeoutMs) {
      for (const n of this.nodes) {
        if (except.includes(n.id)) continue;
        const s = await this.status(n.id, 300);
        if (s?.leader) return { id: n.id, ms: performance.now() - start };
      }
      await sleep(50);
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    for (const id of [...this.procs.keys()]) await this.kill(id);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
