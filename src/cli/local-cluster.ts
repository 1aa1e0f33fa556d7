// A cluster of server processes on this machine: the cluster file, one
// `shardpax server` child per node (log in <dir>/<node>.log), status polling,
// SIGKILL, SIGSTOP/SIGCONT and restart of single nodes, and an orderly stop.
// Used by `shardpax dev`, the real-process tests and the benchmarks.
//
// It runs only what is its own: before anything is written or started, the
// folder must be new (or empty) or hold its cluster file with every node's
// storage matching it, and every port must be free; a status counts only when
// it comes from one of its own children (pid) of its own cluster.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchStatus, type NodeStatus, type ReplicaStatus, replicaStatus } from '../client/admin.js';
import { connectShardMaster } from '../client/shard-master-admin.js';
import type { ConfigNum, GroupId } from '../core/ids.js';
import { type ClusterConfig, defaultKvGroup, loadClusterConfig, parseClusterConfig, SHARD_MASTER_GROUP } from '../runtime/cluster-config.js';
import { checkNodeStorage, initNodeStorage } from '../server/node-storage.js';
import { type StorageProblem, StorageRefusedError } from '../server/node-identity.js';

const BIN = fileURLToPath(new URL('../../bin/shardpax.mjs', import.meta.url));
const STOP_GRACE_MS = 5_000;
/** Lines of a node's log quoted when it dies. */
const CRASH_LOG_LINES = 5;

/** The folder or the ports are not this cluster's to use; nothing was written or started. */
export class LocalClusterError extends Error {
  override readonly name = 'LocalClusterError';
  constructor(
    readonly dir: string,
    readonly problems: readonly string[],
  ) {
    super(`cannot start a local cluster in ${dir}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export interface LocalClusterOptions {
  /** Folder for cluster.json, data and logs; a temp folder (removed by stop()) when left out. */
  readonly dir?: string;
  /** Replicas of each group (at most `nodes`). */
  readonly replicas: number;
  /** Server processes; `replicas` by default. */
  readonly nodes?: number;
  /** KV groups (1, 2, ...) besides group 0, the shard master's; 1 by default. */
  readonly groups?: number;
  /** Shards of the cluster; 64 by default. */
  readonly shards?: number;
  /** Node i listens on basePort + i; free ports are picked when left out. */
  readonly basePort?: number;
}

export const DEFAULT_SHARDS = 64;

export class LocalCluster {
  readonly file: string;
  private readonly procs = new Map<string, ChildProcess>();
  /** Nodes stopped with pause(): stop() resumes them, or their SIGTERM would wait for SIGCONT. */
  private readonly paused = new Set<string>();
  private stopping: Promise<void> | undefined;
  /** Set when a node exits without being asked to. */
  crashed: string | undefined;
  /** Called when a node exits without being asked to. */
  onCrash: (message: string) => void = () => {};

  private constructor(
    readonly dir: string,
    private readonly ownsDir: boolean,
    readonly clusterId: string,
    readonly nodes: ReadonlyArray<{ readonly id: string; readonly address: string }>,
    /** Each group and the nodes hosting it. */
    readonly groups: ReadonlyArray<{ readonly id: GroupId; readonly nodes: readonly string[] }>,
    /** The KV group the SDK uses (and status() reports) by default. */
    readonly kvGroup: GroupId,
  ) {
    this.file = join(dir, 'cluster.json');
  }

  /**
   * Reuses `<dir>/cluster.json` when it exists (and so the data), if every
   * node's storage is this cluster's; in a new or empty folder, creates every
   * node's storage and then writes the cluster file. A LocalClusterError,
   * before anything is written, when the folder is not its own or a port is taken.
   */
  static async create(o: LocalClusterOptions): Promise<{ cluster: LocalCluster; created: boolean }> {
    const dir = o.dir === undefined ? mkdtempSync(join(tmpdir(), 'shardpax-')) : resolve(o.dir);
    const file = join(dir, 'cluster.json');
    const fresh = existsSync(file) ? undefined : await newCluster(dir, file, o);
    const config = fresh?.config ?? loadClusterConfig(file);
    const problems = [...(fresh === undefined ? await foreignStorage(config) : []), ...(await portsInUse(config))];
    if (problems.length > 0) throw new LocalClusterError(dir, problems);
    if (fresh !== undefined) {
      mkdirSync(dir, { recursive: true });
      for (const node of config.nodes) await initNodeStorage(config, node);
      // Written last, and whole (rename): a cluster file always names storage that exists.
      writeFileSync(`${file}.tmp`, JSON.stringify(fresh.json, null, 2) + '\n');
      renameSync(`${file}.tmp`, file);
    }
    const created = fresh !== undefined;
    const nodes = config.nodes.map((n) => ({ id: n.id, address: n.address }));
    const cluster = new LocalCluster(dir, o.dir === undefined, config.clusterId, nodes, config.groups, defaultKvGroup(config));
    return { cluster, created };
  }

  logOf(id: string): string {
    return join(this.dir, `${id}.log`);
  }

  /** Starts node `id`'s server; `rebuild`: with `--rebuild` (after its data folder was wiped, say). */
  start(id: string, options: { readonly rebuild: boolean } = { rebuild: false }): void {
    const log = openSync(this.logOf(id), 'a');
    // SHARDPAX_SERVER_NODE_ARGS passes flags to each server's node (e.g. `--cpu-prof --cpu-prof-dir=prof`).
    const nodeArgs = (process.env.SHARDPAX_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const args = [BIN, 'server', '--cluster', this.file, '--node', id, ...(options.rebuild ? ['--rebuild'] : [])];
    const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', log, log], env: serverEnv(process.env) });
    const crash = (message: string) => {
      if (this.stopping !== undefined || this.procs.get(id) !== child) return;
      this.crashed ??= message;
      this.onCrash(message);
    };
    child.on('error', (err) => crash(`node ${id}: ${err.message}`));
    child.on('exit', (code, signal) =>
      crash(`node ${id} exited (${signal ?? `code ${code}`}); the end of ${this.logOf(id)}:\n${this.logTail(id, CRASH_LOG_LINES)}`),
    );
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
    this.paused.delete(id);
    if (p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  /** Freezes a node (SIGSTOP): it keeps its sockets but neither reads nor answers, like a long GC pause. */
  pause(id: string): void {
    const p = this.procs.get(id);
    if (p === undefined || !p.kill('SIGSTOP')) throw new Error(`node ${id} has no live process to pause`);
    this.paused.add(id);
  }

  /** Lets a paused node run again (SIGCONT); it then works through what queued up meanwhile. */
  resume(id: string): void {
    const p = this.procs.get(id);
    if (p === undefined || !p.kill('SIGCONT')) throw new Error(`node ${id} has no live process to resume`);
    this.paused.delete(id);
  }

  isPaused(id: string): boolean {
    return this.paused.has(id);
  }

  /** Node `id`'s whole status if its own child answers (another cluster's node is refused, another process's pid ignored). */
  async nodeStatus(id: string, timeoutMs = 1_000): Promise<NodeStatus | undefined> {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    const s = await fetchStatus(n.address, timeoutMs, this.clusterId).catch(() => undefined);
    return s !== undefined && s.pid === this.procs.get(id)?.pid ? s : undefined;
  }

  /** Node `id`'s status as the replica of `group` (the SDK's KV group by default), if its own child answers. */
  async status(id: string, timeoutMs = 1_000, group: GroupId = this.kvGroup): Promise<ReplicaStatus | undefined> {
    const s = await this.nodeStatus(id, timeoutMs);
    return s === undefined ? undefined : replicaStatus(s, group);
  }

  /** Status as the replica of `group` of every node that hosts one and answers within `timeoutMs`. */
  async statuses(timeoutMs: number, group: GroupId = this.kvGroup): Promise<Map<string, ReplicaStatus>> {
    const got = await Promise.all(this.nodes.map((n) => this.status(n.id, timeoutMs, group)));
    return new Map(got.flatMap((s) => (s === undefined ? [] : [[s.node, s]])));
  }

  /** Polls until a node (not in `except`) leads `group`; its id and how long that took. */
  async awaitLeader(timeoutMs: number, except: readonly string[] = [], group: GroupId = this.kvGroup): Promise<{ id: string; ms: number }> {
    const start = performance.now();
    while (performance.now() - start < timeoutMs) {
      if (this.crashed !== undefined) throw new Error(this.crashed);
      for (const s of (await this.statuses(300, group)).values()) {
        if (s.leader && !except.includes(s.node)) return { id: s.node, ms: performance.now() - start };
      }
      await sleep(50);
    }
    throw new Error(`no leader of group ${group} within ${timeoutMs} ms; see the logs in ${this.dir}`);
  }

  /**
   * Polls until every node's own child serves and every group has a leader, then on a fresh cluster joins every KV
   * group at the shard master (a KV group serves only the shards a config gives it); the leader of group kvGroup.
   */
  async awaitReady(timeoutMs: number): Promise<string> {
    const start = performance.now();
    let missing: string[] = [];
    while (performance.now() - start < timeoutMs) {
      if (this.crashed !== undefined) throw new Error(this.crashed);
      const all = (await Promise.all(this.nodes.map((n) => this.nodeStatus(n.id, 300)))).filter((s) => s !== undefined);
      const leaders = new Map(all.flatMap((s) => s.groups.filter((g) => g.leader).map((g) => [g.group, s.node] as const)));
      missing = [
        ...this.nodes.filter((n) => !all.some((s) => s.node === n.id)).map((n) => `node ${n.id} not serving`),
        ...this.groups.filter((g) => !leaders.has(g.id)).map((g) => `no leader of group ${g.id}`),
      ];
      const leader = leaders.get(this.kvGroup);
      if (missing.length === 0 && leader !== undefined) {
        await this.joinKvGroups(Math.ceil(Math.max(1_000, timeoutMs - (performance.now() - start))));
        return leader;
      }
      await sleep(50);
    }
    throw new Error(`not ready within ${timeoutMs} ms (${missing.join(', ')}); see the logs in ${this.dir}`);
  }

  /**
   * On a fresh cluster (the shard master at config 0), joins every KV group at the shard master; the joins' config
   * numbers. Later it joins none: a group an admin made leave stays out across restarts.
   */
  async joinKvGroups(timeoutMs: number): Promise<ConfigNum[]> {
    const admin = await connectShardMaster({ cluster: this.file, timeoutMs });
    try {
      if ((await admin.query()).num > 0) return [];
      const nums: ConfigNum[] = [];
      for (const g of this.groups) if (g.id !== SHARD_MASTER_GROUP) nums.push(await admin.join(g.id, g.nodes));
      return nums;
    } finally {
      await admin.close();
    }
  }

  /** Last lines of every node's log, for error reports. */
  logTails(lines: number): string {
    return this.nodes.map((n) => `--- ${n.id}.log\n${this.logTail(n.id, lines)}`).join('\n');
  }

  private logTail(id: string, lines: number): string {
    const text = existsSync(this.logOf(id)) ? readFileSync(this.logOf(id), 'utf8') : '(no log)';
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** SIGTERM every node, SIGKILL after a grace period; removes a temp folder. Idempotent. */
  stop(): Promise<void> {
    for (const id of this.paused) this.procs.get(id)?.kill('SIGCONT');
    this.paused.clear();
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

/**
 * A new cluster's file contents: nodes on consecutive ports from basePort, or
 * on free ones; group 0 and the KV groups placed round-robin over the nodes,
 * each on `replicas` of them (the next group starts where the last one ended).
 */
async function newCluster(dir: string, file: string, o: LocalClusterOptions): Promise<{ json: unknown; config: ClusterConfig }> {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new LocalClusterError(dir, [
      'the folder holds files but no cluster.json: it is not a `shardpax dev` folder (or its cluster file was deleted); ' +
        'use another --dir, or an empty folder',
    ]);
  }
  const count = o.nodes ?? o.replicas;
  if (o.replicas < 1 || o.replicas > count) {
    throw new LocalClusterError(dir, [`${o.replicas} replicas per group need at least as many nodes (there are ${count})`]);
  }
  const nodes = [];
  for (let i = 0; i < count; i++) {
    const port = o.basePort === undefined ? await freePort() : o.basePort + i;
    nodes.push({ id: `n${i + 1}`, address: `127.0.0.1:${port}`, dataDir: `n${i + 1}` });
  }
  const groups = Array.from({ length: 1 + (o.groups ?? 1) }, (_, g) => ({
    id: g,
    nodes: Array.from({ length: o.replicas }, (_, j) => ((g * o.replicas + j) % count) + 1)
      .sort((a, b) => a - b)
      .map((i) => `n${i}`),
  }));
  const json = { version: 2, clusterId: randomUUID(), shards: o.shards ?? DEFAULT_SHARDS, nodes, groups };
  return { json, config: parseClusterConfig(json, file) };
}

/** What is wrong with each node's storage, if it is not this cluster's (or is in use). */
async function foreignStorage(config: ClusterConfig): Promise<string[]> {
  const problems: string[] = [];
  for (const node of config.nodes) {
    await checkNodeStorage(config, node).catch((err: unknown) => {
      // Lost or damaged storage is the node's own to report: its server refuses to start and says how to rebuild.
      if (err instanceof StorageRefusedError && NODE_REPORTS.has(err.problem.kind)) return;
      problems.push(err instanceof Error ? err.message : String(err));
    });
  }
  return problems;
}

const NODE_REPORTS: ReadonlySet<StorageProblem['kind']> = new Set(['missing', 'empty-folder', 'unopenable', 'no-identity', 'bad-identity']);

/** A problem for every node whose address cannot be listened on now. */
async function portsInUse(config: ClusterConfig): Promise<string[]> {
  const problems: string[] = [];
  for (const node of config.nodes) {
    const at = node.address.lastIndexOf(':');
    const host = node.address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    const port = Number(node.address.slice(at + 1));
    const error = await canListen(host, port);
    if (error !== undefined) {
      problems.push(
        `node ${node.id}: cannot listen on ${node.address} (${error}): another process uses the port ` +
          '(another `shardpax dev`?); stop it, or pick other ports (--port with a new --dir)',
      );
    }
  }
  return problems;
}

/** Undefined when `host:port` can be listened on (and is released again); else the error's code. */
function canListen(host: string, port: number): Promise<string | undefined> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    s.listen({ host, port, exclusive: true }, () => s.close(() => done(undefined)));
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

/**
 * A server's environment: glibc keeps up to 8 malloc arenas per core, one per
 * thread that allocates (LevelDB's compaction thread, libuv's pool), and 1 MiB
 * values freed in them are rarely handed back: with 2 arenas a 1 MiB-value
 * load held 214-299 MB of RSS instead of 461-485 MB (measured, README). A
 * MALLOC_ARENA_MAX already set wins here; bin/shardpax.mjs's shebang sets 2
 * (start it with `node bin/shardpax.mjs` to choose another).
 */
export function serverEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? '2' };
}
