// Data-load benchmark: does a replica group hold a large data set within
// bounded memory, restart fast, rebuild a wiped node, take big values and
// stalled readers, and keep its leader under load? Starts its own local group
// (LocalCluster, temp folder, free loopback ports), runs the chosen phases
// against it, prints a table of targets (PASS/FAIL with the measured figure)
// and writes every figure to a JSON file. A benchmark, not a test: never run
// in CI. Every wait is bounded. A memory guard reads every server's RSS every
// 200 ms: one past --abort-rss-mb is SIGKILLed, its phase fails and the later
// phases are skipped, so a too-large run cannot take the machine down. Every
// phase also lists the changes of leader or ballot it saw.
//
//   npm run bench:data -- [--phases load,restart,wipe,stalled] [--bytes-per-node 1g] [--help]
//
// Phases (default: load,restart,wipe,stalled; `all` adds bigvalues and leadership):
//   load        1 KiB values under new keys until --bytes-per-node is written;
//               RSS, disk, ops/s each second; throughput and latency per tenth
//   restart     SIGKILL every node, start them all: time to a leader and a put+get
//   wipe        SIGKILL a follower, delete its data folder, restart it: time
//               until it has applied what the leader has; its RSS every 250 ms
//   bigvalues   1 MiB values under new keys until --big-bytes is written
//   stalled     readers that hold 1 MiB gets in flight and stop reading, while
//               normal clients put: RSS, and throughput against a baseline
//   leadership  a long full-speed put run: any change of leader or ballot
//
// Exit code: 0 when every target passed, 1 when one failed or a phase did
// not finish, 2 on bad flags, 130 after Ctrl-C.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ReplicaStatus } from '../src/client/admin.js';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { connect, type Db } from '../src/client/db.js';
import { loadClusterConfig } from '../src/runtime/cluster-config.js';
import { type ReaderStats, type StallMode, StalledReader } from './lib/stalled-reader.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PHASES = ['load', 'restart', 'wipe', 'bigvalues', 'stalled', 'leadership'] as const;
type PhaseName = (typeof PHASES)[number];
const DEFAULT_PHASES: readonly PhaseName[] = ['load', 'restart', 'wipe', 'stalled'];

/** Targets that have no flag. */
const TARGETS = {
  /** Throughput of the last tenth of the load over the first. */
  loadThroughputRatio: 0.8,
  /** Cluster ready (leader and a put+get) after a full restart. */
  restartMs: 5_000,
  /** Normal clients' throughput with stalled readers over without. */
  stalledThroughputRatio: 0.5,
} as const;

const PER_CLIENT = 64; // operations in flight per connect(), as in put-throughput
const LEADER_WAIT_MS = 30_000;
const HEALTH_WAIT_MS = 60_000;
const MIN_AVAILABLE_MB = 512; // abort a phase when the machine has less memory than this left
const BIG_VALUE_BYTES = 1 << 20; // the largest value the store takes (src/kv/limits.ts)
const STALL_KEY = 'stall-1MiB';
const STALL_RELEASE_KEY = 'stall-release (absent)';
const STALLED_KEYS = 1_000; // normal clients of the stalled phase overwrite these keys
const MB = 2 ** 20;
const NO_PROGRESS_S = 120; // a fill phase gives up when no put succeeded for this long

// ---------------------------------------------------------------- options

interface Options {
  readonly phases: readonly PhaseName[];
  readonly replicas: number;
  readonly valueBytes: number;
  readonly concurrency: number;
  readonly bytesPerNode: number;
  readonly rssLimitMb: number;
  readonly loadTimeoutS: number;
  readonly opTimeoutMs: number;
  readonly restartTimeoutS: number;
  readonly wipeLoad: number;
  readonly wipeTimeoutS: number;
  readonly bigBytes: number;
  readonly bigConcurrency: number;
  readonly bigRssLimitMb: number;
  readonly bigTimeoutS: number;
  readonly stalledReaders: number;
  readonly stalledCalls: number;
  readonly stalledSeconds: number;
  readonly stalledClients: number;
  readonly stalledMode: StallMode;
  readonly stalledTarget: 'leader' | 'spread';
  readonly leaderSeconds: number;
  readonly leaderConcurrency: number;
  readonly leaderKeys: number;
  readonly abortRssMb: number;
  readonly json: string;
}

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** "1g", "50m", "512k", "1024": binary multiples (1g = 2^30 bytes). */
function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (m === null) throw new InvalidArgumentError('must be a size such as 1024, 512k, 50m or 1g');
  const power = ['', 'k', 'm', 'g', 't'].indexOf((m[2] ?? '').toLowerCase());
  const n = Math.round(Number(m[1]) * 1024 ** power);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive size');
  return n;
}

function parsePhases(v: string): PhaseName[] {
  if (v.trim() === 'all') return [...PHASES];
  const names = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!(PHASES as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown phase ${JSON.stringify(n)}; phases: ${PHASES.join(', ')}, or all`);
  }
  if (names.length === 0) throw new InvalidArgumentError('no phase given');
  // Always in the documented order: later phases build on the data of earlier ones.
  return PHASES.filter((p) => names.includes(p));
}

function parseOptions(argv: readonly string[]): Options {
  const program = new Command('bench:data')
    .description('data-load benchmark on a local group: memory, disk, restart, wipe, big values, stalled readers, leadership')
    .addOption(
      new Option('--phases <list>', `comma-separated phases (${PHASES.join(',')}) or all`).argParser(parsePhases).default([...DEFAULT_PHASES], DEFAULT_PHASES.join(',')),
    )
    .option('--replicas <n>', 'servers in the group', intArg(1, 9), 3)
    .option('--value-bytes <n>', 'load: value size', intArg(1, BIG_VALUE_BYTES), 1024)
    .option('--concurrency <n>', `load: puts in flight (${PER_CLIENT} per client)`, intArg(1, 4096), 128)
    .addOption(
      new Option('--bytes-per-node <size>', 'load: logical bytes (keys+values) to write; one group, so every node holds it all').argParser(parseSize).default(parseSize('1g'), '1g'),
    )
    .option('--rss-limit-mb <n>', 'load, wipe: target for a server\'s max RSS', intArg(1, 1 << 20), 300)
    .option('--load-timeout <s>', 'load: give up after this many seconds', intArg(1, 86_400), 3_600)
    .option('--op-timeout-ms <ms>', 'SDK timeout of one operation', intArg(100, 600_000), 10_000)
    .option('--restart-timeout <s>', 'restart: give up after this many seconds', intArg(1, 3_600), 120)
    .option('--wipe-load <n>', 'wipe: puts in flight while the wiped node catches up (0: none)', intArg(0, 1024), 8)
    .option('--wipe-timeout <s>', 'wipe: give up after this many seconds', intArg(1, 86_400), 600)
    .addOption(new Option('--big-bytes <size>', 'bigvalues: bytes of 1 MiB values to write').argParser(parseSize).default(parseSize('2g'), '2g'))
    .option('--big-concurrency <n>', 'bigvalues: puts in flight', intArg(1, 256), 8)
    .option('--big-rss-limit-mb <n>', 'bigvalues, stalled: target for every server\'s max RSS', intArg(1, 1 << 20), 400)
    .option('--big-timeout <s>', 'bigvalues: give up after this many seconds', intArg(1, 86_400), 3_600)
    .option('--stalled-readers <n>', 'stalled: readers that stop reading', intArg(0, 64), 5)
    .option('--stalled-calls <n>', 'stalled: 1 MiB gets each reader holds in flight', intArg(1, 1024), 64)
    .option('--stalled-seconds <s>', 'stalled: length of the baseline run and of the stalled run', intArg(1, 3_600), 20)
    .option('--stalled-clients <n>', 'stalled: normal clients (one put in flight each)', intArg(1, 256), 8)
    .addOption(
      new Option('--stalled-mode <mode>', 'stalled: socket = stop reading the TCP socket; stream = read frames but grant no flow-control window')
        .choices(['socket', 'stream'])
        .default('socket'),
    )
    .addOption(new Option('--stalled-target <where>', 'stalled: readers connect to the leader, or spread over all nodes').choices(['leader', 'spread']).default('leader'))
    .option('--leader-seconds <s>', 'leadership: length of the run', intArg(1, 86_400), 300)
    .option('--leader-concurrency <n>', 'leadership: puts in flight', intArg(1, 4096), 256)
    .option('--leader-keys <n>', 'leadership: puts overwrite this many keys', intArg(1, 100_000_000), 10_000)
    .option('--abort-rss-mb <n>', 'abort a phase (FAIL) when a server\'s RSS passes this', intArg(64, 1 << 20), 4_096)
    .option('--json <path>', 'where to write the figures (default bench/results/data-load-<timestamp>.json)')
    .addHelpText(
      'after',
      `\nTargets without flags: load throughput last/first tenth >= ${TARGETS.loadThroughputRatio}; restart ready < ${TARGETS.restartMs / 1000} s;\n` +
        `stalled throughput with/without readers >= ${TARGETS.stalledThroughputRatio}; leadership: no change of leader or ballot.\n` +
        'Sizes take k/m/g suffixes (binary: 1g = 2^30 bytes). Exit code 0 when every target passed, 1 otherwise.',
    )
    .exitOverride();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    process.exit(code === 0 ? 0 : 2);
  }
  const v = program.opts<Record<string, unknown>>();
  return {
    phases: v.phases as PhaseName[],
    replicas: v.replicas as number,
    valueBytes: v.valueBytes as number,
    concurrency: v.concurrency as number,
    bytesPerNode: v.bytesPerNode as number,
    rssLimitMb: v.rssLimitMb as number,
    loadTimeoutS: v.loadTimeout as number,
    opTimeoutMs: v.opTimeoutMs as number,
    restartTimeoutS: v.restartTimeout as number,
    wipeLoad: v.wipeLoad as number,
    wipeTimeoutS: v.wipeTimeout as number,
    bigBytes: v.bigBytes as number,
    bigConcurrency: v.bigConcurrency as number,
    bigRssLimitMb: v.bigRssLimitMb as number,
    bigTimeoutS: v.bigTimeout as number,
    stalledReaders: v.stalledReaders as number,
    stalledCalls: v.stalledCalls as number,
    stalledSeconds: v.stalledSeconds as number,
    stalledClients: v.stalledClients as number,
    stalledMode: v.stalledMode as StallMode,
    stalledTarget: v.stalledTarget as 'leader' | 'spread',
    leaderSeconds: v.leaderSeconds as number,
    leaderConcurrency: v.leaderConcurrency as number,
    leaderKeys: v.leaderKeys as number,
    abortRssMb: v.abortRssMb as number,
    json: (v.json as string | undefined) ?? join(REPO, 'bench', 'results', `data-load-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
  };
}

// ---------------------------------------------------------------- /proc, disk, numbers

/** VmRSS and VmHWM (peak RSS) of a process, in bytes; undefined when it is gone. */
function procMemory(pid: number): { rss: number; hwm: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resets a process's VmHWM to its current RSS (Linux clear_refs 5), so VmHWM is the peak from now on. */
function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

function memAvailableBytes(): number {
  try {
    return Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN) * 1024;
  } catch {
    return NaN;
  }
}

/** Space a folder takes on disk (like du: allocated blocks), tolerating files LevelDB deletes meanwhile. */
function duBytes(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    try {
      total += e.isDirectory() ? duBytes(p) : statSync(p).blocks * 512;
    } catch {
      // deleted by a compaction between readdir and stat
    }
  }
  return total;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function fmt(x: number | undefined, digits = 0): string {
  return x !== undefined && Number.isFinite(x) ? x.toFixed(digits) : '-';
}

const mb = (bytes: number) => bytes / MB;
const now = () => performance.now();

function errorText(err: unknown): string {
  const e = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return e.replace(/"[^"]*"/g, '"<key>"'); // one sample per kind of error, not per key
}

/** `promise`, or `fallback` once `ms` passed. */
async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- progress line

/** One updating stderr line on a terminal; a plain line every 10 s otherwise. */
class Progress {
  private lastPlain = 0;
  private shown = false;
  set(text: string): void {
    if (process.stderr.isTTY) {
      const width = Math.max(20, (process.stderr.columns || 120) - 1);
      process.stderr.write(`\r\x1b[K${text.length > width ? text.slice(0, width - 1) + '…' : text}`);
      this.shown = true;
    } else if (now() - this.lastPlain >= 10_000) {
      this.lastPlain = now();
      process.stderr.write(`  ${text}\n`);
    }
  }
  /** Clears the line so a normal line can follow. */
  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
    this.lastPlain = 0;
  }
}

const progress = new Progress();

// ---------------------------------------------------------------- the bench, phases, samples

interface Bench {
  readonly o: Options;
  readonly cluster: LocalCluster;
  /** Node id -> its data folder, from the cluster file. */
  readonly dataDirs: ReadonlyMap<string, string>;
  readonly interrupted: AbortSignal;
}

interface TargetResult {
  readonly phase: PhaseName;
  readonly name: string;
  readonly target: string;
  readonly measured: string;
  /** undefined: not measured. */
  readonly pass: boolean | undefined;
}

interface NodeSample {
  readonly pid: number;
  readonly rssMb: number;
  readonly hwmMb: number;
  readonly diskMb?: number;
}

interface Sample {
  readonly tS: number;
  readonly label: string;
  readonly nodes: Record<string, NodeSample | null>;
  readonly extra?: Record<string, number>;
}

type AbortKind = 'interrupt' | 'timeout' | 'rss' | 'memory' | 'crash' | 'error';

interface LeaderEvent {
  readonly tS: number;
  readonly what: string;
}

/**
 * Follows who leads, from every node's status: a change of the set of nodes
 * that say they lead (when all answered), or of any node's ballot round, is an
 * event. Polls are fire-and-forget, one at a time, at most one a second.
 */
class LeaderWatch {
  readonly events: LeaderEvent[] = [];
  polls = 0;
  unanswered = 0;
  /** Nodes that say they lead, as of the last poll every node answered. */
  leaders: string | undefined;
  private readonly rounds = new Map<string, number>();
  private pending = false;
  private lastPoll = -Infinity;

  constructor(
    private readonly cluster: LocalCluster,
    private readonly elapsedS: () => number,
  ) {}

  poll(): void {
    if (this.pending || now() - this.lastPoll < 1_000) return;
    this.pending = true;
    this.lastPoll = now();
    void this.cluster
      .statuses(1_000)
      .then((statuses) => this.observe(statuses))
      .finally(() => {
        this.pending = false;
      });
  }

  observe(statuses: ReadonlyMap<string, ReplicaStatus>): void {
    const tS = Number(this.elapsedS().toFixed(1));
    this.polls += 1;
    this.unanswered += this.cluster.nodes.length - statuses.size;
    if (statuses.size === this.cluster.nodes.length) {
      const leaders = [...statuses.values()].filter((s) => s.leader).map((s) => s.node).sort().join(',');
      if (this.leaders !== undefined && leaders !== this.leaders) this.events.push({ tS, what: `leader ${this.leaders || 'none'} -> ${leaders || 'none'}` });
      this.leaders = leaders;
    }
    for (const s of statuses.values()) {
      const before = this.rounds.get(s.node);
      if (before !== undefined && before !== s.ballotRound) this.events.push({ tS, what: `${s.node} ballot round ${before} -> ${s.ballotRound}` });
      this.rounds.set(s.node, s.ballotRound);
    }
  }

  /** Forgets a node's ballot (it was restarted on purpose). */
  forget(id: string): void {
    this.rounds.delete(id);
  }

  summary() {
    return { leaders: this.leaders, events: this.events, polls: this.polls, unansweredPolls: this.unanswered };
  }

  line(): string {
    const head = `  leader ${this.leaders || '?'} at the end; ${this.polls} status polls, ${this.unanswered} node answers missing`;
    if (this.events.length === 0) return `${head}; no change of leader or ballot`;
    const shown = this.events.slice(0, 8).map((e) => `    ${e.tS} s: ${e.what}`);
    if (this.events.length > 8) shown.push(`    … ${this.events.length - 8} more in the JSON`);
    return `${head}; ${this.events.length} changes of leader or ballot:\n${shown.join('\n')}`;
  }
}

/** State of the running phase: its abort switch, samples, figures and targets. */
class PhaseContext {
  private readonly controller = new AbortController();
  readonly started = now();
  readonly startedAt = new Date().toISOString();
  kind: AbortKind | undefined;
  reason: string | undefined;
  readonly samples: Sample[] = [];
  readonly crashes: string[] = [];
  readonly figures: Record<string, unknown> = {};
  readonly targets: TargetResult[] = [];
  readonly leaders: LeaderWatch;
  /** Whether the phase's samplers polled statuses (the restart phase does not: every leader is new). */
  watchedLeaders = false;
  /** Running samplers, told every RSS reading of the memory guard. */
  readonly rssListeners = new Set<(id: string, pid: number, rssMb: number, hwmMb: number) => void>();

  constructor(
    readonly phase: PhaseName,
    cluster: LocalCluster,
    interrupted: AbortSignal,
  ) {
    this.leaders = new LeaderWatch(cluster, () => this.elapsedS());
    if (interrupted.aborted) this.abort('interrupted', 'interrupt');
    else interrupted.addEventListener('abort', () => this.abort('interrupted (Ctrl-C)', 'interrupt'), { once: true });
  }

  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  abort(reason: string, kind: AbortKind): void {
    if (this.aborted) return;
    this.kind = kind;
    this.reason = reason;
    this.controller.abort();
  }

  /** Sleeps `ms`, or less when the phase aborts. */
  sleep(ms: number): Promise<void> {
    if (this.aborted) return Promise.resolve();
    return new Promise((done) => {
      const timer = setTimeout(finish, ms);
      const signal = this.controller.signal;
      function finish() {
        clearTimeout(timer);
        signal.removeEventListener('abort', finish);
        done();
      }
      signal.addEventListener('abort', finish, { once: true });
    });
  }

  /** Aborts the phase after `seconds`; returns a function that cancels that. */
  deadline(seconds: number, what: string): () => void {
    const timer = setTimeout(() => this.abort(`${what}: not done within ${seconds} s`, 'timeout'), seconds * 1000);
    return () => clearTimeout(timer);
  }

  elapsedS(): number {
    return (now() - this.started) / 1000;
  }

  target(name: string, target: string, measured: string, pass: boolean | undefined): void {
    this.targets.push({ phase: this.phase, name, target, measured, pass });
  }
}

/**
 * Through a whole phase, every 200 ms, reads every server's RSS (running
 * samplers fold it into their maxima): a server past --abort-rss-mb is
 * SIGKILLed at once and the phase aborts; so does the largest server when the
 * machine runs short of memory. (RSS can grow by more than 1 GB a second: a
 * check once a second, and a phase that keeps loading while it drains, let a
 * server reach 5.9 GB with a 4 GB limit.)
 */
class MemoryGuard {
  private timer: NodeJS.Timeout | undefined;
  readonly killed: Array<{ node: string; rssMb: number; tS: number; why: string }> = [];

  constructor(
    private readonly b: Bench,
    private readonly ctx: PhaseContext,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.check(), 200);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const rss: Array<{ id: string; bytes: number }> = [];
    for (const n of this.b.cluster.nodes) {
      const pid = livePid(this.b.cluster, n.id);
      const m = pid === undefined ? undefined : procMemory(pid);
      if (pid === undefined || m === undefined) continue;
      for (const listen of this.ctx.rssListeners) listen(n.id, pid, mb(m.rss), mb(m.hwm));
      rss.push({ id: n.id, bytes: m.rss });
      if (m.rss > this.b.o.abortRssMb * MB) this.kill(n.id, m.rss, `RSS ${fmt(mb(m.rss))} MB passed --abort-rss-mb ${this.b.o.abortRssMb}`);
    }
    const available = memAvailableBytes();
    const largest = rss.sort((x, y) => y.bytes - x.bytes)[0];
    if (available < MIN_AVAILABLE_MB * MB && largest !== undefined) {
      this.kill(largest.id, largest.bytes, `the machine had only ${fmt(mb(available))} MB of memory available`);
    }
  }

  private kill(id: string, rssBytes: number, why: string): void {
    this.killed.push({ node: id, rssMb: mb(rssBytes), tS: Number(this.ctx.elapsedS().toFixed(1)), why });
    this.ctx.abort(`${id} ${why}; SIGKILLed it`, why.startsWith('RSS') ? 'rss' : 'memory');
    void this.b.cluster.kill(id);
  }
}

interface NodeFigures {
  /** Largest VmRSS sampled. */
  maxRssMb: number;
  /** Peak RSS (VmHWM, reset at the start of the run), or NaN when it could not be reset. */
  peakRssMb: number;
  lastDiskMb: number;
  maxDiskMb: number;
}

/** The RSS figure a target is judged on: the kernel's peak when known, else the largest sample. */
const rssOf = (n: NodeFigures) => (Number.isFinite(n.peakRssMb) ? Math.max(n.peakRssMb, n.maxRssMb) : n.maxRssMb);

/**
 * Samples every server's RSS (and peak RSS) and data folder size every
 * `intervalMs`, and polls statuses for leader changes (LeaderWatch).
 */
class Sampler {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private lastDisk = -Infinity;
  /** Pids whose VmHWM counts: reset at start, or started during the run. */
  private readonly trustedPeak = new Set<number>();
  private readonly untrustedPeak = new Set<number>();
  private readonly figures = new Map<string, NodeFigures>();
  latest: Sample | undefined;

  constructor(
    private readonly b: Bench,
    private readonly ctx: PhaseContext,
    private readonly label: string,
    private readonly intervalMs = 1_000,
    private readonly diskEveryMs = 1_000,
    private readonly extra?: () => Record<string, number>,
    private readonly onSample?: (s: Sample) => void,
    private readonly watchLeaders = true,
  ) {}

  start(): void {
    if (this.watchLeaders) this.ctx.watchedLeaders = true;
    for (const n of this.b.cluster.nodes) {
      const pid = livePid(this.b.cluster, n.id);
      if (pid === undefined) continue;
      if (resetPeakRss(pid)) this.trustedPeak.add(pid);
      else this.untrustedPeak.add(pid);
    }
    this.running = true;
    this.ctx.rssListeners.add(this.listener);
    this.sample();
  }

  /** Takes a last sample and stops. */
  stop(): Record<string, NodeFigures> {
    if (this.running) this.sample(true);
    this.running = false;
    clearTimeout(this.timer);
    this.ctx.rssListeners.delete(this.listener);
    return Object.fromEntries(this.figures);
  }

  /** The memory guard's readings (every 200 ms) count too, so the maxima miss no spike between samples. */
  private readonly listener = (id: string, pid: number, rssMb: number, hwmMb: number) => {
    this.note(id, pid, rssMb, hwmMb);
  };

  /** Folds one reading into a node's maxima. */
  private note(id: string, pid: number, rssMb: number, hwmMb: number): NodeFigures {
    if (!this.untrustedPeak.has(pid)) this.trustedPeak.add(pid); // a process started during the run
    const f = this.figures.get(id) ?? { maxRssMb: 0, peakRssMb: NaN, lastDiskMb: NaN, maxDiskMb: 0 };
    f.maxRssMb = Math.max(f.maxRssMb, rssMb);
    if (this.trustedPeak.has(pid)) f.peakRssMb = Number.isFinite(f.peakRssMb) ? Math.max(f.peakRssMb, hwmMb) : hwmMb;
    this.figures.set(id, f);
    return f;
  }

  private sample(last = false): void {
    const disk = last || now() - this.lastDisk >= this.diskEveryMs;
    if (disk) this.lastDisk = now();
    const nodes: Record<string, NodeSample | null> = {};
    for (const n of this.b.cluster.nodes) {
      const pid = livePid(this.b.cluster, n.id);
      const m = pid === undefined ? undefined : procMemory(pid);
      if (pid === undefined || m === undefined) {
        nodes[n.id] = null;
        continue;
      }
      const diskBytes = disk ? duBytes(this.b.dataDirs.get(n.id) ?? '') : undefined;
      const s: NodeSample = { pid, rssMb: mb(m.rss), hwmMb: mb(m.hwm), ...(diskBytes === undefined ? {} : { diskMb: mb(diskBytes) }) };
      nodes[n.id] = s;
      const f = this.note(n.id, pid, s.rssMb, s.hwmMb);
      if (s.diskMb !== undefined) {
        f.lastDiskMb = s.diskMb;
        f.maxDiskMb = Math.max(f.maxDiskMb, s.diskMb);
      }
    }
    if (this.watchLeaders && !last) this.ctx.leaders.poll();
    const extra = this.extra?.();
    const s: Sample = { tS: Number(this.ctx.elapsedS().toFixed(3)), label: this.label, nodes, ...(extra === undefined ? {} : { extra }) };
    this.ctx.samples.push(s);
    this.latest = s;
    this.onSample?.(s);
    if (this.running && !last) this.timer = setTimeout(() => this.sample(), this.intervalMs);
  }
}

function livePid(cluster: LocalCluster, id: string): number | undefined {
  try {
    const pid = cluster.pid(id);
    return pidAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** "n1 120 · n2 118 · n3 119" from a sample: RSS in MB per node. */
function rssLine(s: Sample | undefined): string {
  if (s === undefined) return '';
  return Object.entries(s.nodes)
    .map(([id, n]) => `${id} ${n === null ? 'down' : fmt(n.rssMb)}`)
    .join(' · ');
}

function diskLine(s: Sample | undefined): string {
  if (s === undefined) return '';
  const d = Object.values(s.nodes).map((n) => n?.diskMb ?? NaN).filter(Number.isFinite);
  return d.length === 0 ? '' : `disk ${fmt(Math.max(...d))} MB`;
}

/** "n1 412 · n2 398 · n3 405 MB" from per-node figures. */
function rssFigures(nodes: Record<string, NodeFigures>): string {
  const parts = Object.entries(nodes).map(([id, n]) => `${id} ${fmt(rssOf(n))}`);
  return parts.length === 0 ? '-' : `${parts.join(' · ')} MB`;
}

function maxRss(nodes: Record<string, NodeFigures>): number {
  const v = Object.values(nodes).map(rssOf);
  return v.length === 0 ? NaN : Math.max(...v);
}

// ---------------------------------------------------------------- load generator

/**
 * Values of `length` random bytes at random offsets of a 16 MiB pool: no two
 * puts share a value, so LevelDB's compression cannot shrink the data set and
 * the disk figures stay honest, at no cost per put.
 */
class ValuePool {
  private readonly pool = randomBytes(16 * MB);
  constructor(private readonly length: number) {}
  next(): Uint8Array {
    const offset = Math.floor(Math.random() * (this.pool.length - this.length + 1));
    return this.pool.subarray(offset, offset + this.length);
  }
}

interface Job {
  readonly key: string;
  readonly value: Uint8Array;
}

interface OpResult {
  readonly job: Job;
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly at: number;
  readonly error?: string;
}

/** Closed-loop puts: `concurrency` workers over ceil(concurrency / perClient) connect() clients. */
class PutLoad {
  private stopped = false;
  private workers: Array<Promise<void>> = [];

  private constructor(
    private readonly dbs: readonly Db[],
    private readonly timeoutMs: number,
  ) {}

  static async start(
    b: Bench,
    ctx: PhaseContext,
    o: {
      readonly concurrency: number;
      readonly perClient: number;
      readonly timeoutMs: number;
      readonly next: () => Job | undefined;
      readonly onResult: (r: OpResult) => void;
    },
  ): Promise<PutLoad> {
    const dbs: Db[] = [];
    try {
      for (let i = 0; i < Math.ceil(o.concurrency / o.perClient); i++) {
        dbs.push(await connect({ cluster: b.cluster.file, timeoutMs: o.timeoutMs, window: o.perClient, connectTimeoutMs: 5_000 }));
      }
    } catch (err) {
      await Promise.allSettled(dbs.map((db) => db.close()));
      throw err;
    }
    const load = new PutLoad(dbs, o.timeoutMs);
    const worker = async (db: Db): Promise<void> => {
      while (!load.stopped && !ctx.aborted) {
        const job = o.next();
        if (job === undefined) return;
        const t0 = now();
        let error: string | undefined;
        try {
          await db.put(job.key, job.value);
        } catch (err) {
          error = errorText(err);
        }
        const t1 = now();
        if (load.stopped && error !== undefined) return; // closed under it: not the cluster's failure
        o.onResult({ job, ok: error === undefined, latencyMs: t1 - t0, at: t1, ...(error === undefined ? {} : { error }) });
        if (error !== undefined) await ctx.sleep(10); // no hot loop on a failing cluster
      }
    };
    load.workers = Array.from({ length: o.concurrency }, (_, i) => worker(dbs[Math.floor(i / o.perClient)] as Db));
    return load;
  }

  /** Resolves when every worker ran out of jobs (or the phase aborted). */
  done(): Promise<void> {
    return Promise.all(this.workers).then(() => undefined);
  }

  /** Stops issuing, waits (bounded) for what is in flight, closes the clients. False if workers were still busy. */
  async stop(): Promise<boolean> {
    this.stopped = true;
    const drained = await within(this.done().then(() => true), this.timeoutMs + 2_000, false);
    await within(Promise.allSettled(this.dbs.map((db) => db.close())), 5_000, []);
    return drained;
  }
}

/** Counts and latencies of a run of operations. */
class OpStats {
  ops = 0;
  bytes = 0;
  errors = 0;
  readonly latencies: number[] = [];
  readonly errorSamples: Record<string, number> = {};

  add(r: OpResult): void {
    if (r.ok) {
      this.ops += 1;
      this.bytes += r.job.key.length + r.job.value.byteLength;
      this.latencies.push(r.latencyMs);
    } else {
      this.errors += 1;
      const e = r.error ?? 'unknown';
      this.errorSamples[e] = (this.errorSamples[e] ?? 0) + 1;
    }
  }

  summary(seconds: number) {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return {
      seconds: Number(seconds.toFixed(3)),
      ops: this.ops,
      opsPerSec: this.ops / seconds,
      mbPerSec: mb(this.bytes) / seconds,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? NaN,
      errors: this.errors,
      errorSamples: this.errorSamples,
    };
  }
}

// ---------------------------------------------------------------- fill: load and bigvalues

interface Tenth {
  readonly tenth: number;
  readonly toMb: number;
  readonly seconds: number;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly mbPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** Enough operations (2 x concurrency) that completions arriving in batches do not decide the rate. */
  readonly timeable: boolean;
}

/**
 * Writes `targetBytes` (key + value bytes of successful puts) under new keys
 * `<prefix><n>`; per tenth of the bytes: throughput and latency.
 */
async function fill(
  b: Bench,
  ctx: PhaseContext,
  o: { prefix: string; valueBytes: number; targetBytes: number; concurrency: number; timeoutMs: number; timeoutS: number },
): Promise<{ tenths: Tenth[]; nodes: Record<string, NodeFigures>; written: number; complete: boolean }> {
  const values = new ValuePool(o.valueBytes);
  const tenthBytes = o.targetBytes / 10;
  const tenths = Array.from({ length: 10 }, () => ({ stats: new OpStats(), endAt: NaN }));
  const all = new OpStats();
  let issued = 0; // bytes issued, less those of failed puts
  let written = 0;
  let nextKey = 0;
  let opsAtLastSample = 0;
  let lastSampleAt = now();
  let lastProgressAt = now();
  let writtenAtLastSample = 0;
  const started = now();
  const cancel = ctx.deadline(o.timeoutS, `writing ${fmt(mb(o.targetBytes))} MB`);
  const sampler = new Sampler(
    b,
    ctx,
    'fill',
    1_000,
    1_000,
    () => {
      const t = now();
      const opsPerSec = ((all.ops - opsAtLastSample) * 1000) / Math.max(1, t - lastSampleAt);
      opsAtLastSample = all.ops;
      lastSampleAt = t;
      return { writtenMb: Number(mb(written).toFixed(3)), opsPerSec: Number(opsPerSec.toFixed(1)), errors: all.errors };
    },
    (s) => {
      if (written > writtenAtLastSample) lastProgressAt = now();
      writtenAtLastSample = written;
      const stuckS = (now() - lastProgressAt) / 1000;
      if (stuckS > Math.max(NO_PROGRESS_S, (3 * o.timeoutMs) / 1000)) ctx.abort(`no put succeeded for ${fmt(stuckS)} s`, 'timeout');
      progress.set(
        `${ctx.phase} ${fmt(mb(written))}/${fmt(mb(o.targetBytes))} MB (${fmt((100 * written) / o.targetBytes)}%) ` +
          `${fmt(s.extra?.opsPerSec)} ops/s · RSS ${rssLine(s)} MB · ${diskLine(s)} · errors ${all.errors} · ${fmt(ctx.elapsedS())} s`,
      );
    },
  );
  sampler.start();
  let load: PutLoad | undefined;
  let nodes: Record<string, NodeFigures> = {};
  try {
    load = await PutLoad.start(b, ctx, {
      concurrency: o.concurrency,
      perClient: Math.min(PER_CLIENT, o.concurrency),
      timeoutMs: o.timeoutMs,
      next: () => {
        if (issued >= o.targetBytes) return undefined;
        const key = `${o.prefix}${nextKey++}`;
        issued += key.length + o.valueBytes;
        return { key, value: values.next() };
      },
      onResult: (r) => {
        const bytes = r.job.key.length + r.job.value.byteLength;
        const tenth = Math.min(9, Math.floor(written / tenthBytes));
        const t = tenths[tenth];
        if (t === undefined) return;
        t.stats.add(r);
        all.add(r);
        if (r.ok) {
          written += bytes;
          t.endAt = r.at;
        } else {
          issued -= bytes; // write another key in its place
        }
      },
    });
    // Bounded: workers stop at the phase deadline, and each put at the operation timeout.
    await load.done();
  } finally {
    cancel();
    const drained = (await load?.stop()) ?? true;
    if (!drained) ctx.figures.undrained = 'workers were still busy after the operation timeout';
    nodes = sampler.stop();
  }
  let from = started;
  const result: Tenth[] = [];
  for (const [i, t] of tenths.entries()) {
    if (!Number.isFinite(t.endAt)) break;
    const seconds = (t.endAt - from) / 1000;
    const s = t.stats.summary(seconds);
    result.push({
      tenth: i + 1,
      toMb: mb(Math.min(o.targetBytes, (i + 1) * tenthBytes)),
      seconds: s.seconds,
      ops: s.ops,
      opsPerSec: s.opsPerSec,
      mbPerSec: s.mbPerSec,
      p50Ms: s.p50Ms,
      p99Ms: s.p99Ms,
      errors: s.errors,
      timeable: s.ops >= 2 * o.concurrency,
    });
    from = t.endAt;
  }
  const total = all.summary((now() - started) / 1000);
  Object.assign(ctx.figures, {
    targetBytes: o.targetBytes,
    writtenBytes: written,
    keys: nextKey,
    valueBytes: o.valueBytes,
    concurrency: o.concurrency,
    total,
    tenths: result,
    nodes,
  });
  return { tenths: result, nodes, written, complete: written >= o.targetBytes };
}

function tenthsTable(tenths: readonly Tenth[]): string {
  return table(
    ['tenth', 'to MB', 's', 'ops/s', 'MB/s', 'p50 ms', 'p99 ms', 'errors'],
    tenths.map((t) => [
      String(t.tenth),
      fmt(t.toMb, 1),
      fmt(t.seconds, 1),
      t.timeable ? fmt(t.opsPerSec) : `(${t.ops} ops)`,
      t.timeable ? fmt(t.mbPerSec, 2) : '-',
      fmt(t.p50Ms, 1),
      fmt(t.p99Ms, 1),
      String(t.errors),
    ]),
  ) + (tenths.every((t) => t.timeable) ? '' : '\n  (a tenth with fewer than 2 x concurrency operations is too small to time)');
}

function nodesTable(nodes: Record<string, NodeFigures>): string {
  return table(
    ['node', 'max RSS MB', 'peak RSS MB', 'disk MB (end)', 'max disk MB'],
    Object.entries(nodes).map(([id, n]) => [id, fmt(n.maxRssMb), fmt(n.peakRssMb), fmt(n.lastDiskMb, 1), fmt(n.maxDiskMb, 1)]),
  );
}

// ---------------------------------------------------------------- phase: load

async function phaseLoad(b: Bench, ctx: PhaseContext): Promise<string[]> {
  const { o } = b;
  const r = await fill(b, ctx, {
    prefix: 'k',
    valueBytes: o.valueBytes,
    targetBytes: o.bytesPerNode,
    concurrency: o.concurrency,
    timeoutMs: o.opTimeoutMs,
    timeoutS: o.loadTimeoutS,
  });
  const worst = maxRss(r.nodes);
  ctx.target('max RSS per server', `< ${o.rssLimitMb} MB`, rssFigures(r.nodes), Number.isFinite(worst) ? worst < o.rssLimitMb : undefined);
  const first = r.tenths[0];
  const last = r.tenths[9];
  const ratio = first !== undefined && last !== undefined ? last.opsPerSec / first.opsPerSec : NaN;
  const timeable = first?.timeable === true && last?.timeable === true;
  ctx.target(
    'throughput last/first tenth',
    `>= ${TARGETS.loadThroughputRatio}`,
    last === undefined
      ? `not reached (${fmt(mb(r.written), 1)} MB written)`
      : `${fmt(ratio, 2)} (${fmt(last.opsPerSec)} / ${fmt(first?.opsPerSec)} ops/s)${timeable ? '' : '; tenths too small to time'}`,
    last === undefined ? false : timeable ? ratio >= TARGETS.loadThroughputRatio : undefined,
  );
  const total = ctx.figures.total as ReturnType<OpStats['summary']>;
  ctx.target('errors', '0', String(total.errors), total.errors === 0);
  ctx.figures.throughputRatio = ratio;
  // The first tenth includes warm-up (connections, JIT), which flatters the ratio: show the last against the best too.
  const best = Math.max(...r.tenths.filter((t) => t.timeable).map((t) => t.opsPerSec));
  ctx.figures.lastToBestTenth = last === undefined ? NaN : last.opsPerSec / best;
  return [
    tenthsTable(r.tenths),
    last === undefined ? '' : `  last tenth / best tenth: ${fmt(last.opsPerSec / best, 2)} (the first tenth includes warm-up)`,
    nodesTable(r.nodes),
    errorLines(total.errorSamples),
  ];
}

function errorLines(samples: Record<string, number>): string {
  return Object.entries(samples)
    .map(([e, n]) => `  ${n} x ${e}`)
    .join('\n');
}

// ---------------------------------------------------------------- phase: restart

async function phaseRestart(b: Bench, ctx: PhaseContext): Promise<string[]> {
  const { cluster, o } = b;
  const sampler = new Sampler(b, ctx, 'restart', 250, 1_000, undefined, undefined, false);
  for (const n of cluster.nodes) await cluster.kill(n.id);
  const t0 = now();
  cluster.startAll();
  sampler.start();
  const cancel = ctx.deadline(o.restartTimeoutS, 'restart');
  const firstAnswerMs: Record<string, number> = {};
  let leaderMs: number | undefined;
  let leader: string | undefined;
  let probeMs: number | undefined;
  let probeAttempts = 0;
  let lastProbeError: string | undefined;
  const value = randomBytes(16);

  const allAnswered = () => Object.keys(firstAnswerMs).length === cluster.nodes.length;
  const watchStatus = async () => {
    // Until ready and every node answered, or 10 s after ready (a node that never comes back shows as '-').
    while (!ctx.aborted && !(leaderMs !== undefined && probeMs !== undefined && (allAnswered() || now() - t0 > Math.max(leaderMs, probeMs) + 10_000))) {
      const statuses = await cluster.statuses(300);
      const t = now() - t0;
      for (const id of statuses.keys()) firstAnswerMs[id] ??= t;
      const l = [...statuses.values()].find((s) => s.leader);
      if (l !== undefined && leaderMs === undefined) {
        leaderMs = t;
        leader = l.node;
      }
      progress.set(`restart ${fmt((now() - t0) / 1000, 1)} s: answering ${Object.keys(firstAnswerMs).join(',') || 'none'}, leader ${leader ?? 'none'}, put+get ${probeMs === undefined ? `not yet (${probeAttempts} tries)` : 'ok'} · RSS ${rssLine(sampler.latest)} MB`);
      await ctx.sleep(50);
    }
  };
  const probe = async () => {
    while (!ctx.aborted && probeMs === undefined) {
      probeAttempts += 1;
      let db: Db | undefined;
      try {
        const left = o.restartTimeoutS * 1000 - (now() - t0);
        db = await connect({ cluster: cluster.file, connectTimeoutMs: 1_000, timeoutMs: Math.max(1_000, Math.min(left, o.opTimeoutMs)) });
        await db.put('restart-probe', value);
        const got = await db.get('restart-probe');
        if (got === undefined || Buffer.compare(Buffer.from(got), value) !== 0) throw new Error('get returned another value than the put wrote');
        probeMs = now() - t0;
      } catch (err) {
        lastProbeError = errorText(err);
        await ctx.sleep(100);
      } finally {
        await within(db?.close() ?? Promise.resolve(), 5_000, undefined);
      }
    }
  };
  let nodes: Record<string, NodeFigures> = {};
  try {
    await Promise.all([watchStatus(), probe()]);
  } finally {
    cancel();
    nodes = sampler.stop();
  }
  const readyMs = leaderMs !== undefined && probeMs !== undefined ? Math.max(leaderMs, probeMs) : undefined;
  Object.assign(ctx.figures, { leader, leaderMs, putGetMs: probeMs, readyMs, firstStatusMs: firstAnswerMs, probeAttempts, lastProbeError, nodes });
  ctx.target(
    'ready after a full restart (leader + put/get)',
    `< ${TARGETS.restartMs / 1000} s`,
    readyMs === undefined ? `not ready in ${o.restartTimeoutS} s` : `${fmt(readyMs / 1000, 2)} s`,
    readyMs !== undefined && readyMs < TARGETS.restartMs,
  );
  return [
    table(
      ['leader after', 'put+get after', 'ready after', 'tries'],
      [[ms(leaderMs), ms(probeMs), ms(readyMs), String(probeAttempts)]],
    ),
    table(
      ['node', 'status answered after', 'max RSS MB', 'peak RSS MB'],
      cluster.nodes.map((n) => [n.id, ms(firstAnswerMs[n.id]), fmt(nodes[n.id]?.maxRssMb), fmt(nodes[n.id]?.peakRssMb)]),
    ),
    probeMs === undefined && lastProbeError !== undefined ? `  last put/get error: ${lastProbeError}` : '',
  ];
}

const ms = (x: number | undefined) => (x === undefined ? '-' : `${fmt(x / 1000, 2)} s`);

// ---------------------------------------------------------------- phase: wipe

async function phaseWipe(b: Bench, ctx: PhaseContext): Promise<string[]> {
  const { cluster, o } = b;
  const leader = await currentLeader(b, ctx, LEADER_WAIT_MS);
  const follower = cluster.nodes.find((n) => n.id !== leader)?.id;
  if (follower === undefined) {
    ctx.target('wiped follower converges', 'a follower', 'one replica: no follower to wipe', undefined);
    return [];
  }
  const dir = b.dataDirs.get(follower);
  if (dir === undefined || !resolve(dir).startsWith(resolve(cluster.dir) + sep)) {
    throw new Error(`refusing to delete ${String(dir)}: not inside the benchmark's cluster folder ${cluster.dir}`);
  }

  const stats = new OpStats();
  let nextKey = 0;
  const values = new ValuePool(o.valueBytes);
  const load =
    o.wipeLoad > 0
      ? await PutLoad.start(b, ctx, {
          concurrency: o.wipeLoad,
          perClient: Math.min(PER_CLIENT, o.wipeLoad),
          timeoutMs: o.opTimeoutMs,
          next: () => ({ key: `w${nextKey++}`, value: values.next() }),
          onResult: (r) => stats.add(r),
        })
      : undefined;
  let loadStart = now();
  let converged: number | undefined;
  let reachedKillPoint: number | undefined;
  let firstAnswer: number | undefined;
  let t0 = now();
  let leaderAtKill: ReplicaStatus | undefined;
  let last: { follower?: ReplicaStatus; leader?: ReplicaStatus } = {};
  const sampler = new Sampler(b, ctx, 'wipe', 250, 1_000, () => ({
    followerApplied: last.follower?.appliedBelow ?? NaN,
    leaderApplied: last.leader?.appliedBelow ?? NaN,
  }));
  const cancel = ctx.deadline(o.wipeTimeoutS, `wiped ${follower} catching up`);
  let dirBytes = NaN;
  let nodes: Record<string, NodeFigures> = {};
  try {
    await ctx.sleep(1_000); // the load settles
    loadStart = now();
    leaderAtKill = await cluster.status(leader, 2_000);
    if (leaderAtKill === undefined) throw new Error(`leader ${leader} did not answer its status`);
    dirBytes = duBytes(dir);
    await cluster.kill(follower);
    ctx.leaders.forget(follower);
    rmSync(dir, { recursive: true, force: true });
    t0 = now();
    cluster.start(follower, { rebuild: true }); // a node that lost its data may start only this way
    sampler.start();
    let previousLeaderApplied: number | undefined;
    while (!ctx.aborted) {
      const statuses = await cluster.statuses(1_000);
      const t = now() - t0;
      const f = statuses.get(follower);
      // The leader among the other nodes; if none says it leads (the wiped node may have taken over), the most advanced of them.
      const others = [...statuses.values()].filter((s) => s.node !== follower);
      const l =
        others.filter((s) => s.leader).sort((x, y) => y.ballotRound - x.ballotRound)[0] ??
        others.sort((x, y) => y.appliedBelow - x.appliedBelow)[0];
      last = { ...(f === undefined ? {} : { follower: f }), ...(l === undefined ? {} : { leader: l }) };
      if (f !== undefined) {
        firstAnswer ??= t;
        if (reachedKillPoint === undefined && f.appliedBelow >= leaderAtKill.appliedBelow) reachedKillPoint = t;
        // Caught up with what the leader had applied one poll (<= 250 ms) earlier.
        if (previousLeaderApplied !== undefined && f.appliedBelow >= previousLeaderApplied) {
          converged = t;
          break;
        }
      }
      previousLeaderApplied = l?.appliedBelow; // only a leader that answered this poll counts next time
      const fr = sampler.latest?.nodes[follower];
      progress.set(
        `wipe ${follower}: applied ${f?.appliedBelow ?? '-'} / leader ${l?.appliedBelow ?? '-'} (had ${leaderAtKill.appliedBelow} at the kill) · ` +
          `RSS ${fr === null || fr === undefined ? '-' : fmt(fr.rssMb)} MB · ${fmt(t / 1000, 1)} s · load ${stats.ops} ok ${stats.errors} errors`,
      );
      await ctx.sleep(250);
    }
  } finally {
    cancel();
    await load?.stop();
    nodes = sampler.stop();
  }
  const loadSeconds = (now() - loadStart) / 1000;
  const f = nodes[follower];
  Object.assign(ctx.figures, {
    follower,
    leader,
    dataDirBytesBeforeWipe: dirBytes,
    leaderAppliedAtKill: leaderAtKill?.appliedBelow,
    firstStatusMs: firstAnswer,
    reachedKillPointMs: reachedKillPoint,
    convergedMs: converged,
    finalFollower: last.follower,
    finalLeader: last.leader,
    load: o.wipeLoad > 0 ? { concurrency: o.wipeLoad, ...stats.summary(loadSeconds) } : undefined,
    nodes,
  });
  ctx.target(
    `wiped ${follower} applies what the leader has`,
    `within ${o.wipeTimeoutS} s`,
    converged === undefined ? `not converged (${last.follower?.appliedBelow ?? '-'} of ${last.leader?.appliedBelow ?? '-'})` : `${fmt(converged / 1000, 2)} s`,
    converged !== undefined,
  );
  ctx.target(`max RSS of wiped ${follower}`, `< ${o.rssLimitMb} MB`, f === undefined ? '-' : `${fmt(rssOf(f))} MB`, f === undefined ? undefined : rssOf(f) < o.rssLimitMb);
  const summary = o.wipeLoad > 0 ? stats.summary(loadSeconds) : undefined;
  return [
    table(
      ['wiped', 'data before', 'answers after', 'reached leader@kill', 'converged after', 'load ops/s', 'load errors'],
      [
        [
          follower,
          `${fmt(mb(dirBytes), 1)} MB`,
          ms(firstAnswer),
          `${ms(reachedKillPoint)} (slot ${leaderAtKill?.appliedBelow ?? '-'})`,
          ms(converged),
          fmt(summary?.opsPerSec),
          String(summary?.errors ?? '-'),
        ],
      ],
    ),
    nodesTable(nodes),
    summary === undefined ? '' : errorLines(summary.errorSamples),
  ];
}

/** The node that says it leads (the highest ballot if several do), polling up to `timeoutMs`. */
async function currentLeader(b: Bench, ctx: PhaseContext, timeoutMs: number): Promise<string> {
  const deadline = now() + timeoutMs;
  while (!ctx.aborted && now() < deadline) {
    const leaders = [...(await b.cluster.statuses(1_000)).values()].filter((s) => s.leader).sort((x, y) => y.ballotRound - x.ballotRound);
    if (leaders[0] !== undefined) return leaders[0].node;
    await ctx.sleep(100);
  }
  throw new Error(ctx.aborted ? (ctx.reason ?? 'aborted') : `no leader within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------- phase: bigvalues

async function phaseBigValues(b: Bench, ctx: PhaseContext): Promise<string[]> {
  const { o } = b;
  const r = await fill(b, ctx, {
    prefix: 'b',
    valueBytes: BIG_VALUE_BYTES,
    targetBytes: o.bigBytes,
    concurrency: o.bigConcurrency,
    timeoutMs: Math.max(o.opTimeoutMs, 30_000),
    timeoutS: o.bigTimeoutS,
  });
  const worst = maxRss(r.nodes);
  ctx.target('max RSS of every server', `< ${o.bigRssLimitMb} MB`, rssFigures(r.nodes), Number.isFinite(worst) ? worst < o.bigRssLimitMb : undefined);
  const total = ctx.figures.total as ReturnType<OpStats['summary']>;
  ctx.target('errors', '0', String(total.errors), total.errors === 0);
  return [
    table(['MB written', 'MB/s', 'p50 ms', 'p99 ms', 'errors'], [[fmt(mb(r.written), 1), fmt(total.mbPerSec, 2), fmt(total.p50Ms, 1), fmt(total.p99Ms, 1), String(total.errors)]]),
    tenthsTable(r.tenths),
    nodesTable(r.nodes),
    errorLines(total.errorSamples),
  ];
}

// ---------------------------------------------------------------- phase: stalled

/** `clients` normal clients with one 1 KiB put in flight each, over a fixed key set, for `seconds`. */
async function normalRun(b: Bench, ctx: PhaseContext, label: string, seconds: number, onSample?: () => void) {
  const stats = new OpStats();
  const values = new ValuePool(1024);
  let n = 0;
  const sampler = new Sampler(b, ctx, label, 1_000, 5_000, undefined, (s) => {
    onSample?.();
    progress.set(`stalled/${label}: ${stats.ops} puts, ${stats.errors} errors · RSS ${rssLine(s)} MB · ${fmt(ctx.elapsedS())} s`);
  });
  const load = await PutLoad.start(b, ctx, {
    concurrency: b.o.stalledClients,
    perClient: 1,
    timeoutMs: b.o.opTimeoutMs,
    next: () => ({ key: `s${n++ % STALLED_KEYS}`, value: values.next() }),
    onResult: (r) => stats.add(r),
  });
  sampler.start();
  const t0 = now();
  let nodes: Record<string, NodeFigures> = {};
  try {
    await ctx.sleep(seconds * 1000);
  } finally {
    nodes = sampler.stop();
    await load.stop();
  }
  return { ...stats.summary((now() - t0) / 1000), nodes };
}

async function phaseStalled(b: Bench, ctx: PhaseContext): Promise<string[]> {
  const { cluster, o } = b;
  const baseline = await normalRun(b, ctx, 'baseline', o.stalledSeconds);
  ctx.figures.baseline = baseline;
  if (ctx.aborted) return [];

  const db = await connect({ cluster: cluster.file, timeoutMs: 30_000, connectTimeoutMs: 5_000 });
  try {
    await db.put(STALL_KEY, randomBytes(BIG_VALUE_BYTES));
  } finally {
    await within(db.close(), 5_000, undefined);
  }
  const leader = await currentLeader(b, ctx, LEADER_WAIT_MS);
  const addressOf = (id: string) => cluster.nodes.find((n) => n.id === id)?.address ?? '';
  const readers: StalledReader[] = [];
  let stalled: Awaited<ReturnType<typeof normalRun>> | undefined;
  const released: boolean[] = [];
  try {
    for (let i = 0; i < o.stalledReaders; i++) {
      const node = o.stalledTarget === 'leader' ? leader : (cluster.nodes[i % cluster.nodes.length]?.id ?? leader);
      readers.push(await StalledReader.open(addressOf(node), cluster.clusterId, o.stalledMode, o.stalledCalls, 10_000));
    }
    for (const r of readers) r.stall(STALL_KEY);
    stalled = await normalRun(b, ctx, 'stalled', o.stalledSeconds, () => {
      for (const r of readers) r.sampleSocket();
    });
    ctx.figures.stalled = stalled;
    progress.set('stalled: readers read again; draining what the servers held');
    await Promise.all(readers.map((r) => r.drain(30_000)));
    for (const r of readers) released.push(await r.release(STALL_RELEASE_KEY, 10_000).catch(() => false));
  } finally {
    for (const r of readers) r.close();
  }
  const readerStats: ReaderStats[] = readers.map((r) => r.stats);
  Object.assign(ctx.figures, { leader, mode: o.stalledMode, target: o.stalledTarget, readers: readerStats, released });
  if (stalled === undefined) return [];
  const worst = maxRss(stalled.nodes);
  ctx.target(
    'max RSS of every server with stalled readers',
    `< ${o.bigRssLimitMb} MB`,
    rssFigures(stalled.nodes),
    Number.isFinite(worst) ? worst < o.bigRssLimitMb : undefined,
  );
  const ratio = stalled.opsPerSec / baseline.opsPerSec;
  ctx.figures.throughputRatio = ratio;
  ctx.target(
    'normal throughput with/without stalled readers',
    `>= ${TARGETS.stalledThroughputRatio}`,
    `${fmt(ratio, 2)} (${fmt(stalled.opsPerSec)} / ${fmt(baseline.opsPerSec)} ops/s)`,
    ratio >= TARGETS.stalledThroughputRatio,
  );
  const runRow = (name: string, r: typeof baseline) => [name, fmt(r.opsPerSec), fmt(r.p50Ms, 1), fmt(r.p99Ms, 1), String(r.errors), rssFigures(r.nodes)];
  return [
    table(['run', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'RSS (peak)'], [runRow('baseline', baseline), runRow('stalled', stalled)]),
    table(
      ['reader', 'server', 'session', 'gets', 'answered after resume', 'MB read', 'server closed it', 'kernel queues (ours/theirs) KB', 'released'],
      readerStats.map((r, i) => [
        String(i + 1),
        r.address,
        String(r.session),
        String(r.calls),
        `${r.completed}${r.failed > 0 ? ` (+${r.failed} ended with a gRPC error)` : ''}`,
        fmt(mb(r.dataBytes), 1),
        r.serverClosedAfterMs !== undefined ? `after ${fmt(r.serverClosedAfterMs / 1000, 1)} s` : r.closed ? 'yes (seen on resume)' : 'no',
        `${fmt(r.maxRxQueue / 1024)}/${fmt(r.maxServerTxQueue / 1024)}`,
        released[i] === true ? 'yes' : 'no',
      ]),
    ),
    `  readers: ${o.stalledReaders} x ${o.stalledCalls} gets of a 1 MiB value, mode ${o.stalledMode}, on ${o.stalledTarget === 'leader' ? `the leader ${leader}` : 'every node in turn'}`,
    errorLines({ ...baseline.errorSamples, ...stalled.errorSamples }),
  ];
}

// ---------------------------------------------------------------- phase: leadership

async function phaseLeadership(b: Bench, ctx: PhaseContext): Promise<string[]> {
  const { o } = b;
  const stats = new OpStats();
  const values = new ValuePool(o.valueBytes);
  let n = 0;
  // The sampler polls every node's status each second; ctx.leaders collects the changes.
  const sampler = new Sampler(b, ctx, 'leadership', 1_000, 5_000, undefined, (s) => {
    const secs = ctx.elapsedS();
    progress.set(
      `leadership ${fmt(secs)}/${o.leaderSeconds} s: ${fmt(stats.ops / Math.max(secs, 0.001))} ops/s, ${stats.errors} errors, leader ${ctx.leaders.leaders ?? '?'}, ` +
        `${ctx.leaders.events.length} changes · RSS ${rssLine(s)} MB`,
    );
  });
  const load = await PutLoad.start(b, ctx, {
    concurrency: o.leaderConcurrency,
    perClient: Math.min(PER_CLIENT, o.leaderConcurrency),
    timeoutMs: o.opTimeoutMs,
    next: () => ({ key: `L${n++ % o.leaderKeys}`, value: values.next() }),
    onResult: (r) => stats.add(r),
  });
  sampler.start();
  const t0 = now();
  let nodes: Record<string, NodeFigures> = {};
  try {
    await ctx.sleep(o.leaderSeconds * 1000);
  } finally {
    await load.stop();
    nodes = sampler.stop();
  }
  const summary = stats.summary((now() - t0) / 1000);
  const events = ctx.leaders.events;
  Object.assign(ctx.figures, { concurrency: o.leaderConcurrency, keys: o.leaderKeys, ...summary, nodes });
  ctx.target(
    'changes of leader or ballot under load',
    'none',
    events.length === 0
      ? `none in ${fmt(summary.seconds)} s`
      : `${events.length}: ${events.slice(0, 2).map((e) => `${e.tS} s ${e.what}`).join('; ')}${events.length > 2 ? '; …' : ''}`,
    ctx.leaders.polls === 0 ? undefined : events.length === 0,
  );
  return [
    table(
      ['ops/s', 'p50 ms', 'p99 ms', 'errors', 'status polls', 'answers missing'],
      [[fmt(summary.opsPerSec), fmt(summary.p50Ms, 1), fmt(summary.p99Ms, 1), String(summary.errors), String(ctx.leaders.polls), String(ctx.leaders.unanswered)]],
    ),
    nodesTable(nodes),
    errorLines(summary.errorSamples),
  ];
}

// ---------------------------------------------------------------- running phases

const PHASE_FNS: Record<PhaseName, (b: Bench, ctx: PhaseContext) => Promise<string[]>> = {
  load: phaseLoad,
  restart: phaseRestart,
  wipe: phaseWipe,
  bigvalues: phaseBigValues,
  stalled: phaseStalled,
  leadership: phaseLeadership,
};

type PhaseStatus = 'done' | 'aborted' | 'failed' | 'skipped' | 'interrupted';

interface PhaseResult {
  readonly phase: PhaseName;
  readonly status: PhaseStatus;
  readonly reason?: string;
  readonly abortKind?: AbortKind;
  readonly startedAt: string;
  readonly seconds: number;
  readonly targets: TargetResult[];
  readonly crashes: string[];
  readonly figures: Record<string, unknown>;
  readonly samples: Sample[];
  /** Human-readable detail, printed under the phase. */
  readonly detail: string[];
}

async function runPhase(b: Bench, name: PhaseName): Promise<PhaseResult> {
  const ctx = new PhaseContext(name, b.cluster, b.interrupted);
  b.cluster.onCrash = (message) => {
    ctx.crashes.push(message);
    b.cluster.crashed = undefined; // handled here; the next phase restarts the node
    ctx.abort(message, 'crash');
  };
  console.error(`\n== ${name}`);
  let detail: string[] = [];
  let failed: string | undefined;
  const guard = new MemoryGuard(b, ctx);
  guard.start();
  try {
    detail = await PHASE_FNS[name](b, ctx);
  } catch (err) {
    failed = err instanceof Error ? err.message : String(err);
  } finally {
    guard.stop();
  }
  if (guard.killed.length > 0) {
    ctx.figures.killedByMemoryGuard = guard.killed;
    detail.push(guard.killed.map((k) => `  memory guard: SIGKILLed ${k.node} at ${k.tS} s (${k.why})`).join('\n'));
  }
  progress.clear();
  b.cluster.onCrash = () => {};
  const status: PhaseStatus = failed !== undefined ? 'failed' : ctx.kind === 'interrupt' ? 'interrupted' : ctx.aborted ? 'aborted' : 'done';
  const reason = failed ?? ctx.reason;
  let targets = ctx.targets;
  if (status !== 'done') {
    // A figure that held over part of the run is no pass; one that failed on part of it still fails.
    targets = targets.map((t) => (t.pass === true ? { ...t, measured: `${t.measured} (run incomplete)`, pass: undefined } : t));
    targets.push({ phase: name, name: 'phase ran to the end', target: 'yes', measured: `${status}: ${reason ?? '?'}`, pass: false });
  }
  if (ctx.watchedLeaders) {
    ctx.figures.leaderWatch = ctx.leaders.summary();
    detail.push(ctx.leaders.line());
  }
  if (ctx.crashes.length > 0) detail.push(ctx.crashes.map((c) => `  crash: ${c}`).join('\n'));
  if (status === 'failed' || ctx.kind === 'crash') detail.push(b.cluster.logTails(8));
  return {
    phase: name,
    status,
    ...(reason === undefined ? {} : { reason }),
    ...(ctx.kind === undefined ? {} : { abortKind: ctx.kind }),
    startedAt: ctx.startedAt,
    seconds: ctx.elapsedS(),
    targets,
    crashes: ctx.crashes,
    figures: ctx.figures,
    samples: ctx.samples,
    detail: detail.filter((d) => d.trim() !== ''),
  };
}

/** Restarts nodes that died and waits for a leader; throws when the group does not recover. */
async function ensureHealthy(b: Bench): Promise<string[]> {
  const restarted: string[] = [];
  for (const n of b.cluster.nodes) {
    if (livePid(b.cluster, n.id) !== undefined) continue;
    await b.cluster.kill(n.id);
    b.cluster.start(n.id);
    restarted.push(n.id);
  }
  b.cluster.crashed = undefined;
  await b.cluster.awaitLeader(HEALTH_WAIT_MS);
  return restarted;
}

// ---------------------------------------------------------------- report

function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, leftCols = 1): string {
  const cells = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => '  ' + r.map((c, i) => (i < leftCols ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

function commandLine(): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = process.argv.slice(2).map(quote).join(' ');
  if (process.env.npm_lifecycle_event === 'bench:data') return `npm run bench:data${args === '' ? '' : ` -- ${args}`}`;
  return `node ${process.execArgv.map(quote).join(' ')} ${quote(process.argv[1] ?? 'bench/data-load.ts')}${args === '' ? '' : ` ${args}`}`.replace(/\s+/g, ' ');
}

function gitInfo(): { commit: string; branch: string; dirty: boolean } | { error: string } {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO, timeout: 5_000, encoding: 'utf8' }).trim();
    return { commit: git('rev-parse', 'HEAD'), branch: git('rev-parse', '--abbrev-ref', 'HEAD'), dirty: git('status', '--porcelain') !== '' };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function machineInfo() {
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    memAvailableBytesAtStart: memAvailableBytes(),
    /** 1, 5 and 15 minute load averages at the start: other work on the machine skews every figure. */
    loadAverageAtStart: loadavg(),
    node: process.version,
    platform: process.platform,
    kernel: release(),
  };
}

function knobsLine(o: Options): string {
  const parts: string[] = [`replicas ${o.replicas}`];
  const has = (p: PhaseName) => o.phases.includes(p);
  if (has('load')) parts.push(`load ${fmt(mb(o.bytesPerNode))} MB of ${o.valueBytes} B values at concurrency ${o.concurrency}, RSS limit ${o.rssLimitMb} MB`);
  if (has('restart')) parts.push(`restart timeout ${o.restartTimeoutS} s`);
  if (has('wipe')) parts.push(`wipe load ${o.wipeLoad}, timeout ${o.wipeTimeoutS} s`);
  if (has('bigvalues')) parts.push(`bigvalues ${fmt(mb(o.bigBytes))} MB at concurrency ${o.bigConcurrency}`);
  if (has('bigvalues') || has('stalled')) parts.push(`big RSS limit ${o.bigRssLimitMb} MB`);
  if (has('stalled')) parts.push(`stalled ${o.stalledReaders} readers x ${o.stalledCalls} gets (${o.stalledMode}, ${o.stalledTarget}), ${o.stalledClients} clients, ${o.stalledSeconds} s`);
  if (has('leadership')) parts.push(`leadership ${o.leaderSeconds} s at concurrency ${o.leaderConcurrency} over ${o.leaderKeys} keys`);
  parts.push(`op timeout ${o.opTimeoutMs} ms, abort at RSS ${o.abortRssMb} MB`);
  return parts.join('; ');
}

function targetsTable(results: readonly PhaseResult[]): string {
  const rows = results.flatMap((r) =>
    r.status === 'skipped'
      ? [[r.phase, 'phase ran', '', `skipped: ${r.reason ?? ''}`, 'SKIP']]
      : r.targets.map((t) => [t.phase, t.name, t.target, t.measured, t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'FAIL']),
  );
  return table(['phase', 'target', 'goal', 'measured', 'result'], rows, 4);
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const command = commandLine();
  const git = gitInfo();
  const machine = machineInfo();
  const startedAt = new Date().toISOString();
  const header = [
    'shardpax data-load benchmark',
    `command:  ${command}`,
    `commit:   ${'commit' in git ? `${git.commit} (${git.branch}${git.dirty ? ', uncommitted changes' : ''})` : `unknown (${git.error})`}`,
    `machine:  ${machine.cores} cores (${machine.cpuModel}), ${fmt(machine.memoryBytes / 2 ** 30, 1)} GiB memory, node ${machine.node}, ${machine.platform} ${machine.kernel}; ` +
      `load average ${machine.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} at the start`,
    `phases:   ${o.phases.join(', ')}`,
    `knobs:    ${knobsLine(o)}`,
  ].join('\n');
  console.log(header);

  const { cluster } = await LocalCluster.create({ replicas: o.replicas });
  const dataDirs = new Map(loadClusterConfig(cluster.file).nodes.map((n) => [n.id as string, n.dataDir]));
  const interrupt = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    progress.clear();
    if (signals === 1) {
      console.error(`\n${signal}: ending the current phase, then the report and cleanup (again to kill at once)`);
      interrupt.abort();
    } else {
      cluster.killNow();
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => cluster.killNow());

  const b: Bench = { o, cluster, dataDirs, interrupted: interrupt.signal };
  const results: PhaseResult[] = [];
  try {
    cluster.startAll();
    const leader = await cluster.awaitLeader(LEADER_WAIT_MS);
    await cluster.joinKvGroups(LEADER_WAIT_MS); // a KV group serves no key until it joined
    console.log(`cluster:  ${cluster.nodes.map((n) => `${n.id} ${n.address}`).join(', ')}; leader ${leader.id} after ${fmt(leader.ms)} ms; folder ${cluster.dir}`);
    let skip: string | undefined;
    for (const name of o.phases) {
      if (interrupt.signal.aborted) skip ??= 'interrupted';
      if (skip === undefined) {
        try {
          const restarted = await ensureHealthy(b);
          if (restarted.length > 0) console.error(`restarted ${restarted.join(', ')} (they had died) before ${name}`);
        } catch (err) {
          skip = `the group did not recover before ${name}: ${err instanceof Error ? err.message : String(err)}`;
        }
      }
      if (skip !== undefined) {
        results.push({ phase: name, status: 'skipped', reason: skip, startedAt: new Date().toISOString(), seconds: 0, targets: [], crashes: [], figures: {}, samples: [], detail: [] });
        continue;
      }
      const r = await runPhase(b, name);
      results.push(r);
      const verdict = r.targets.map((t) => (t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'FAIL')).join(' ');
      console.error(`   ${name} ${r.status} in ${fmt(r.seconds, 1)} s: ${verdict}${r.reason === undefined ? '' : ` (${r.reason})`}`);
      if (r.abortKind === 'rss' || r.abortKind === 'memory') skip = `the memory guard stopped ${name}`;
    }
  } catch (err) {
    console.error(`benchmark failed: ${err instanceof Error ? err.message : String(err)}`);
    console.error(cluster.logTails(20));
  } finally {
    progress.clear();
    await cluster.stop();
  }

  console.log('');
  for (const r of results) {
    console.log(`== ${r.phase}: ${r.status}${r.reason === undefined ? '' : ` (${r.reason})`}, ${fmt(r.seconds, 1)} s`);
    for (const d of r.detail) console.log(d);
  }
  console.log(`\n${header}\n`);
  console.log(targetsTable(results));
  const all = results.flatMap((r) => r.targets);
  const failed = all.filter((t) => t.pass === false).length + results.filter((r) => r.status === 'skipped').length;
  console.log(`\n${all.filter((t) => t.pass === true).length} passed, ${failed} failed or skipped, ${all.filter((t) => t.pass === undefined).length} not measured`);

  const report = {
    benchmark: 'data-load',
    command,
    startedAt,
    finishedAt: new Date().toISOString(),
    loadAverageAtEnd: loadavg(),
    git,
    machine,
    knobs: o,
    fixedTargets: TARGETS,
    phases: results,
  };
  try {
    mkdirSync(dirname(o.json), { recursive: true });
    writeFileSync(o.json, JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    console.log(`figures: ${o.json}`);
  } catch (err) {
    console.error(`could not write ${o.json}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (interrupt.signal.aborted) return 130;
  return failed > 0 || results.length < o.phases.length ? 1 : 0;
}

// Exits explicitly: a client connection grpc-js keeps open must not hold the process.
process.exit(await main());
