// Failover benchmark: how long a 3-node group is without a leader, and its
// clients without answers, after the leader is SIGKILLed while a follower is
// still catching up (issue 7, finding 6). A benchmark, not a test: never run
// in CI, every wait is bounded.
//
// Each round, under put load from SDK clients connected to the leader:
//   1. one follower lags: SIGSTOP for --lag-ms while the load goes on, then
//      SIGCONT (or, with --lag-by restart, SIGKILL and a restart once
//      --lag-ms passed, the kill below following as soon as it answers);
//   2. at once, SIGKILL the leader;
//   3. measure from the kill until (a) status shows exactly one node leading,
//      every live node answering, and (b) a put submitted after the kill (one
//      per client) is acknowledged; the ballot rounds the election spent; and
//      whether two nodes ever claimed to lead in one status poll (every
//      --poll-ms, from the SIGSTOP until --settle-ms after both were seen);
//   4. stop the load, restart the killed node, wait until every node has
//      applied the same slots.
// The control series does the same without the SIGSTOP (it waits as long).
// Series are interleaved round by round, so load on the machine hits both
// alike; the load average is recorded per round.
//
//   npm run bench:failover -- [--rounds 10] [--series lag,control | --no-lag] [--json out.json] [--help]
//
// Exit code: 0 when every round finished, 1 when one timed out or the group
// did not recover, 2 on bad flags, 130 after Ctrl-C.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { LocalCluster, sleep } from '../src/cli/local-cluster.js';
import { connect, type Db } from '../src/client/db.js';
import { type ReplicaStatus, replicaStatus } from '../src/client/admin.js';
import { AdminServiceClient } from '../src/gen/shardpax/v1/client.js';
import { CLUSTER_ID_METADATA } from '../src/runtime/cluster-id-metadata.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SERIES = ['lag', 'control'] as const;
type SeriesName = (typeof SERIES)[number];
const LAG_BY = ['stop', 'restart'] as const;
type LagBy = (typeof LAG_BY)[number];
const KEYS = 10_000;
const LEADER_WAIT_MS = 30_000;
const STATUS_TIMEOUT_MS = 250; // a poll that waits longer would hide a gap in leadership
const CONNECT_TIMEOUT_MS = 5_000;
const QUIET_POLLS = 5; // 100 ms apart

// ---------------------------------------------------------------- options

interface Options {
  readonly rounds: number;
  readonly series: readonly SeriesName[];
  readonly clients: number;
  readonly inFlight: number;
  readonly valueBytes: number;
  readonly warmupMs: number;
  readonly lagMs: number;
  readonly lagBy: LagBy;
  readonly pollMs: number;
  readonly settleMs: number;
  readonly opTimeoutMs: number;
  readonly roundTimeoutMs: number;
  readonly catchupTimeoutMs: number;
  readonly json: string;
}

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

function parseSeries(v: string): SeriesName[] {
  const names = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!(SERIES as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown series ${JSON.stringify(n)}; series: ${SERIES.join(', ')}`);
  }
  if (names.length === 0) throw new InvalidArgumentError('no series given');
  return SERIES.filter((s) => names.includes(s));
}

function parseOptions(argv: readonly string[]): Options {
  const program = new Command('bench:failover')
    .description('failover of a local 3-node group: leader SIGKILLed under put load, with a follower catching up (lag) or not (control)')
    .option('--rounds <n>', 'rounds per series', intArg(1, 1_000), 10)
    .addOption(new Option('--series <list>', `comma-separated series (${SERIES.join(',')}), run round by round in turn`).argParser(parseSeries).default([...SERIES], SERIES.join(',')))
    .option('--no-lag', 'only the control series (no follower lags); the same as --series control')
    .option('--clients <n>', 'SDK clients (connect()) putting during a round', intArg(1, 64), 2)
    .option('--in-flight <n>', 'puts in flight per client', intArg(1, 256), 4)
    .option('--value-bytes <n>', 'put value size', intArg(0, 1 << 20), 100)
    .option('--warmup-ms <ms>', 'load before the follower is stopped', intArg(0, 600_000), 1_000)
    .option('--lag-ms <ms>', 'how long the lagging follower stays stopped (or down) under load', intArg(1, 600_000), 3_000)
    .addOption(
      new Option('--lag-by <how>', 'stop = SIGSTOP, then SIGCONT; restart = SIGKILL, then a restart (the node catches up after a restart)')
        .choices([...LAG_BY])
        .default('stop'),
    )
    .option('--poll-ms <ms>', 'status poll interval (every live node each time)', intArg(5, 1_000), 25)
    .option('--settle-ms <ms>', 'keep polling this long after the election and the first put, to catch a second leader', intArg(0, 60_000), 1_000)
    .option('--op-timeout-ms <ms>', 'SDK timeout of one put', intArg(100, 600_000), 30_000)
    .option('--round-timeout-ms <ms>', 'a round fails when no leader or no put came this long after the kill', intArg(1_000, 600_000), 20_000)
    .option('--catchup-timeout-ms <ms>', 'between rounds: wait this long for the restarted node to catch up', intArg(1_000, 3_600_000), 120_000)
    .option('--json <path>', 'where to write the figures (default bench/results/failover-<timestamp>.json)')
    .addHelpText(
      'after',
      '\nServer flags and knobs come from the environment, as for every bench: SHARDPAX_TUNING (JSON, e.g.\n' +
        '\'{"electionTicks":10}\') and SHARDPAX_SERVER_NODE_ARGS (node flags of the server processes).',
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
    rounds: v.rounds as number,
    series: v.lag === false ? ['control'] : (v.series as SeriesName[]),
    clients: v.clients as number,
    inFlight: v.inFlight as number,
    valueBytes: v.valueBytes as number,
    warmupMs: v.warmupMs as number,
    lagMs: v.lagMs as number,
    lagBy: v.lagBy as LagBy,
    pollMs: v.pollMs as number,
    settleMs: v.settleMs as number,
    opTimeoutMs: v.opTimeoutMs as number,
    roundTimeoutMs: v.roundTimeoutMs as number,
    catchupTimeoutMs: v.catchupTimeoutMs as number,
    json: (v.json as string | undefined) ?? join(REPO, 'bench', 'results', `failover-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
  };
}

// ---------------------------------------------------------------- numbers, progress

const now = () => performance.now();

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** The middle value, or the mean of the two middle ones. */
function median(sorted: readonly number[]): number {
  if (sorted.length === 0) return NaN;
  const mid = sorted.length / 2;
  return Number.isInteger(mid) ? ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2 : (sorted[Math.floor(mid)] ?? NaN);
}

function fmt(x: number | undefined, digits = 0): string {
  return x !== undefined && Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function errorText(err: unknown): string {
  const e = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return e.replace(/"[^"]*"/g, '"<key>"'); // one sample per kind of error, not per key
}

/** One updating stderr line on a terminal; plain lines otherwise. */
class Progress {
  private shown = false;
  set(text: string): void {
    if (!process.stderr.isTTY) return;
    const width = Math.max(20, (process.stderr.columns || 120) - 1);
    process.stderr.write(`\r\x1b[K${text.length > width ? text.slice(0, width - 1) + '…' : text}`);
    this.shown = true;
  }
  /** Clears the line so a normal line can follow. */
  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}

const progress = new Progress();

// ---------------------------------------------------------------- status polling

/** What one node said in one poll (the fields failover turns on). */
interface NodeSample {
  readonly leader: boolean;
  readonly knownLeader: string;
  readonly ballotRound: number;
  readonly decidedBelow: number;
  readonly appliedBelow: number;
  readonly pendingDecisions: number;
  readonly transferSource: string;
}

interface Poll {
  /** performance.now() when the poll was sent. */
  readonly at: number;
  /** Every node polled: its answer, or null when it did not answer in STATUS_TIMEOUT_MS. */
  readonly nodes: Record<string, NodeSample | null>;
}

/** A poll as reported: its time in ms since the kill (negative before it). */
interface Sample {
  readonly t: number;
  readonly nodes: Record<string, NodeSample | null>;
}

function toSample(s: ReplicaStatus): NodeSample {
  return {
    leader: s.leader,
    knownLeader: s.knownLeader,
    ballotRound: s.ballotRound,
    decidedBelow: s.decidedBelow,
    appliedBelow: s.appliedBelow,
    pendingDecisions: s.pendingDecisions,
    transferSource: s.transferSource,
  };
}

/**
 * Admin clients that stay connected for a round: `fetchStatus` opens a
 * connection per call, too costly every 25 ms on a 2-core machine.
 */
class StatusClients {
  private readonly clients = new Map<string, AdminServiceClient>();
  constructor(private readonly cluster: LocalCluster) {
    for (const n of cluster.nodes) this.reconnect(n.id);
  }

  /** A fresh channel: one to a node that was down would wait out grpc's reconnect backoff. */
  reconnect(id: string): void {
    const address = this.cluster.nodes.find((n) => n.id === id)?.address;
    if (address === undefined) throw new Error(`no node ${id}`);
    this.clients.get(id)?.close();
    this.clients.set(id, new AdminServiceClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  }

  /** Node `id`'s status as the replica of the cluster's KV group. */
  status(id: string): Promise<ReplicaStatus | undefined> {
    const c = this.clients.get(id);
    if (c === undefined) return Promise.resolve(undefined);
    const metadata = new grpc.Metadata();
    metadata.set(CLUSTER_ID_METADATA, this.cluster.clusterId); // a node of another cluster refuses
    return new Promise((done) => {
      c.status({}, metadata, { deadline: Date.now() + STATUS_TIMEOUT_MS }, (err, s) => done(err === null ? replicaStatus(s, this.cluster.kvGroup) : undefined));
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
  }
}

// ---------------------------------------------------------------- load

/** Closed-loop puts from fresh SDK clients (connect() puts the leader first, as a real client would). */
class Load {
  private stop = false;
  private workers: Promise<void>[] = [];
  ops = 0;
  errors = 0;
  readonly errorSamples: Record<string, number> = {};

  private constructor(
    readonly dbs: readonly Db[],
    private readonly value: Uint8Array,
  ) {}

  static async start(cluster: LocalCluster, o: Options): Promise<Load> {
    const dbs: Db[] = [];
    try {
      for (let i = 0; i < o.clients; i++) {
        dbs.push(await connect({ cluster: cluster.file, timeoutMs: o.opTimeoutMs, connectTimeoutMs: CONNECT_TIMEOUT_MS, window: o.inFlight + 1 }));
      }
    } catch (err) {
      await Promise.allSettled(dbs.map((db) => db.close()));
      throw err;
    }
    const load = new Load(dbs, randomBytes(o.valueBytes));
    load.workers = dbs.flatMap((db) => Array.from({ length: o.inFlight }, () => load.worker(db)));
    return load;
  }

  private async worker(db: Db): Promise<void> {
    while (!this.stop) {
      try {
        await db.put(`key-${Math.floor(Math.random() * KEYS)}`, this.value);
        this.ops += 1;
      } catch (err) {
        this.errors += 1;
        const e = errorText(err);
        this.errorSamples[e] = (this.errorSamples[e] ?? 0) + 1;
        await sleep(10); // no hot loop on a failing client
      }
    }
  }

  /** One put per client, submitted now: the first to be acknowledged gives its time (the Db's extra window place keeps it from queueing behind the load). */
  probe(key: string): Promise<number> {
    return Promise.any(this.dbs.map((db, i) => db.put(`${key}-${i}`, this.value).then(now)));
  }

  async close(graceMs: number): Promise<void> {
    this.stop = true;
    await Promise.race([Promise.allSettled(this.workers), sleep(graceMs)]);
    await Promise.allSettled(this.dbs.map((db) => db.close()));
  }
}

// ---------------------------------------------------------------- one round

interface RoundResult {
  series: SeriesName;
  round: number;
  ok: boolean;
  failure?: string;
  killed: string;
  lagging: string | null;
  /** ms from the SIGKILL until a poll had every live node answering and exactly one claiming to lead. */
  leaderMs: number;
  newLeader: string;
  /** ms until any node claimed to lead (perhaps before every node answered). */
  anyLeaderMs: number;
  /** ms until the first put submitted after the kill was acknowledged (one per client). */
  putMs: number;
  /** Highest ballot round before the kill, and the new leader's when it was first seen leading. */
  ballotBefore: number;
  ballotAtElection: number;
  ballotRounds: number;
  /** Highest ballot round when the round ended: above ballotAtElection when some node kept running. */
  ballotAtEnd: number;
  /** Two nodes claimed to lead in one poll. */
  dualLeader: boolean;
  dualLeaderAt: number[];
  /** Slots the lagging follower was behind the leader's decisions at the kill, as far as the last polls saw. */
  lagSlots: number | null;
  /** The lagging node's own transfer, or "" */
  lagTransfer: string;
  /** ms after the kill until the lagging node had applied all the new leader had decided at election. */
  lagCaughtUpMs: number;
  polls: number;
  /** Polls after the kill in which some live node did not answer in time. */
  pollsMissingAfterKill: number;
  loadOps: number;
  loadErrors: number;
  loadErrorSamples: Record<string, number>;
  /** ms until every node (the killed one restarted) applied the same slots, the load stopped. */
  catchupMs: number;
  /** Who claimed to lead while the killed node restarted and caught up, each change in order. */
  rejoinLeaderChanges: string[];
  /** Ballot rounds spent meanwhile (the restarted node running for leader shows here). */
  rejoinBallotRounds: number;
  loadAverage1m: number;
  timeline: Sample[];
}

interface Bench {
  readonly o: Options;
  readonly cluster: LocalCluster;
  readonly interrupted: AbortSignal;
}

interface Quiet {
  readonly leader: string;
  readonly ms: number;
  /** Highest ballot round seen while waiting. */
  readonly maxBallot: number;
  /** Every change in who claimed to lead, in order ("n1", "n1+n3", "none", ...). */
  readonly leaderChanges: string[];
}

/**
 * Polls until the group is quiet: every node answers, exactly one leads and
 * every node names it, all applied the same slots, and so for QUIET_POLLS
 * polls in a row (right after a start, a second candidate may still win).
 */
async function awaitQuiet(b: Bench, timeoutMs: number): Promise<Quiet> {
  const start = now();
  let last = '';
  let streak = 0;
  let streakLeader = '';
  let maxBallot = -Infinity;
  const leaderChanges: string[] = [];
  while (now() - start < timeoutMs) {
    if (b.cluster.crashed !== undefined) throw new Error(b.cluster.crashed);
    if (b.interrupted.aborted) throw new Error('interrupted');
    const s = [...(await b.cluster.statuses(1_000)).values()];
    const leaders = s.filter((x) => x.leader);
    const leader = leaders[0]?.node ?? '';
    for (const x of s) maxBallot = Math.max(maxBallot, x.ballotRound);
    const claim = leaders.map((x) => x.node).join('+') || 'none';
    if (leaderChanges[leaderChanges.length - 1] !== claim) leaderChanges.push(claim);
    last = `${s.length}/${b.cluster.nodes.length} answering, leaders [${leaders.map((x) => x.node).join(',')}], ` +
      `applied ${s.map((x) => `${x.node}=${x.appliedBelow}`).join(' ')}`;
    const quiet =
      s.length === b.cluster.nodes.length &&
      leaders.length === 1 &&
      s.every((x) => x.knownLeader === leader) &&
      new Set(s.map((x) => x.appliedBelow)).size === 1;
    streak = quiet && leader === streakLeader ? streak + 1 : quiet ? 1 : 0;
    streakLeader = leader;
    if (streak >= QUIET_POLLS) return { leader, ms: now() - start, maxBallot, leaderChanges };
    await sleep(100);
  }
  throw new Error(`the group did not settle within ${timeoutMs} ms (${last})`);
}

function emptyResult(series: SeriesName, round: number, killed: string, lagging: string | null): RoundResult {
  return {
    series, round, ok: false, killed, lagging,
    leaderMs: NaN, newLeader: '', anyLeaderMs: NaN, putMs: NaN,
    ballotBefore: NaN, ballotAtElection: NaN, ballotRounds: NaN, ballotAtEnd: NaN,
    dualLeader: false, dualLeaderAt: [], lagSlots: null, lagTransfer: '', lagCaughtUpMs: NaN,
    polls: 0, pollsMissingAfterKill: 0, loadOps: 0, loadErrors: 0, loadErrorSamples: {}, catchupMs: NaN,
    rejoinLeaderChanges: [], rejoinBallotRounds: NaN,
    loadAverage1m: loadavg()[0] ?? NaN, timeline: [],
  };
}

async function runRound(b: Bench, series: SeriesName, round: number): Promise<RoundResult> {
  const { o, cluster } = b;
  const killed = (await awaitQuiet(b, o.catchupTimeoutMs)).leader;
  const followers = cluster.nodes.map((n) => n.id).filter((id) => id !== killed);
  const lagging = series === 'lag' ? (followers[round % followers.length] ?? null) : null;
  const r = emptyResult(series, round, killed, lagging);
  const status = new StatusClients(cluster);
  const load = await Load.start(cluster, o);
  const roundStart = now();
  let polling = true;
  const live = new Set(cluster.nodes.map((n) => n.id));
  const polls: Poll[] = [];

  // Polls every live, running node each --poll-ms; notes two leaders in one poll.
  const poller = (async () => {
    while (polling) {
      const at = now();
      const ids = [...live].filter((id) => !cluster.isPaused(id));
      const answers = await Promise.all(ids.map((id) => status.status(id)));
      const nodes: Record<string, NodeSample | null> = {};
      ids.forEach((id, i) => {
        const a = answers[i];
        nodes[id] = a === undefined ? null : toSample(a);
      });
      polls.push({ at, nodes });
      if (Object.values(nodes).filter((n) => n?.leader === true).length >= 2) r.dualLeaderAt.push(at);
      await sleep(Math.max(0, o.pollMs - (now() - at)));
    }
  })();

  let killAt: number | undefined;
  try {
    await sleep(o.warmupMs);
    if (lagging === null) await sleep(o.lagMs);
    else await makeLag(b, lagging, live, status);
    const last = polls[polls.length - 1];
    const leading = Object.entries(last?.nodes ?? {}).filter(([, n]) => n?.leader === true).map(([id]) => id);
    if (leading.length !== 1 || leading[0] !== killed) {
      // Not a failover to measure: the leader should have kept its majority all along.
      r.failure = `${killed} no longer led when it was to be killed (leading in the last poll: ${leading.join(',') || 'none'})`;
    } else {
      killAt = now();
      live.delete(killed);
      await cluster.kill(killed);
      await measureFailover(b, r, load, polls, killAt);
    }
  } finally {
    polling = false;
    await poller;
    for (const id of cluster.nodes.map((n) => n.id)) if (cluster.isPaused(id)) cluster.resume(id);
    if (lagging !== null && !running(cluster, lagging)) cluster.start(lagging); // a restart that failed half-way
    await load.close(o.opTimeoutMs + 1_000);
    status.close();
    // Times from the kill; from the round's start when it failed before the kill.
    const zero = killAt ?? roundStart;
    r.polls = polls.length;
    r.timeline = polls.map((p) => ({ t: Math.round(p.at - zero), nodes: p.nodes }));
    r.dualLeaderAt = r.dualLeaderAt.map((at) => Math.round(at - zero));
    r.dualLeader = r.dualLeaderAt.length > 0;
  }

  // Back to three nodes, all caught up, for the next round.
  if (killAt !== undefined) cluster.start(killed);
  const rejoin = await awaitQuiet(b, o.catchupTimeoutMs);
  r.catchupMs = rejoin.ms;
  r.rejoinLeaderChanges = rejoin.leaderChanges;
  r.rejoinBallotRounds = rejoin.maxBallot - Math.max(r.ballotAtEnd, r.ballotBefore);
  r.ok = r.failure === undefined;
  return r;
}

/** Makes `lagging` fall behind for --lag-ms under the load, by --lag-by; returns once it runs again. */
async function makeLag(b: Bench, lagging: string, live: Set<string>, status: StatusClients): Promise<void> {
  const { o, cluster } = b;
  switch (o.lagBy) {
    case 'stop':
      cluster.pause(lagging);
      await sleep(o.lagMs);
      cluster.resume(lagging);
      return;
    case 'restart': {
      live.delete(lagging);
      await cluster.kill(lagging);
      await sleep(o.lagMs);
      cluster.start(lagging);
      status.reconnect(lagging);
      const start = now();
      while ((await status.status(lagging)) === undefined) {
        if (now() - start > LEADER_WAIT_MS) throw new Error(`${lagging} did not answer within ${LEADER_WAIT_MS} ms of its restart`);
        if (cluster.crashed !== undefined) throw new Error(cluster.crashed);
        await sleep(o.pollMs);
      }
      live.add(lagging);
      return;
    }
  }
}

/**
 * From the kill: waits for one leader and a put, keeps polling --settle-ms
 * more, and fills in `r` from the polls (which the poller keeps appending).
 */
async function measureFailover(b: Bench, r: RoundResult, load: Load, polls: readonly Poll[], killAt: number): Promise<void> {
  const { o, cluster } = b;
  // The polls before the kill: the highest ballot and how far the lagging node is behind.
  const before = lastAnswers(polls.filter((p) => p.at < killAt));
  r.ballotBefore = Math.max(...[...before.values()].map((s) => s.ballotRound));
  const killedLast = before.get(r.killed);
  const lagLast = r.lagging === null ? undefined : before.get(r.lagging);
  if (killedLast !== undefined && lagLast !== undefined) r.lagSlots = killedLast.decidedBelow - lagLast.appliedBelow;

  const probe = load.probe(`failover-probe-${r.series}-${r.round}`).then(
    (t) => (r.putMs = t - killAt),
    (err: unknown) => (r.failure ??= `no probe put was acknowledged: ${errorText(err)}`),
  );
  let seen = 0;
  while (now() - killAt < o.roundTimeoutMs && !(Number.isFinite(r.leaderMs) && Number.isFinite(r.putMs))) {
    if (b.interrupted.aborted) throw new Error('interrupted');
    if (cluster.crashed !== undefined) throw new Error(cluster.crashed);
    for (; seen < polls.length; seen++) {
      const p = polls[seen];
      if (p !== undefined && p.at >= killAt) electionSeen(r, p, p.at - killAt);
    }
    await sleep(o.pollMs / 2);
  }
  if (!Number.isFinite(r.leaderMs)) r.failure ??= `no single leader within ${o.roundTimeoutMs} ms of the kill`;
  if (!Number.isFinite(r.putMs)) r.failure ??= `no put acknowledged within ${o.roundTimeoutMs} ms of the kill`;
  await sleep(o.settleMs);
  await Promise.race([probe, sleep(1_000)]);

  r.loadOps = load.ops;
  r.loadErrors = load.errors;
  Object.assign(r.loadErrorSamples, load.errorSamples);
  const after = polls.filter((p) => p.at >= killAt);
  r.pollsMissingAfterKill = after.filter((p) => Object.values(p.nodes).some((n) => n === null)).length;
  r.ballotAtEnd = Math.max(...after.flatMap((p) => Object.values(p.nodes).map((n) => n?.ballotRound ?? -Infinity)));
  const lagging = r.lagging;
  if (lagging !== null) {
    r.lagTransfer = [...new Set(after.map((p) => p.nodes[lagging]?.transferSource ?? '').filter((x) => x !== ''))].join(',');
    const target = after.find((p) => p.at - killAt >= r.leaderMs)?.nodes[r.newLeader]?.decidedBelow;
    const caught = target === undefined ? undefined : after.find((p) => (p.nodes[lagging]?.appliedBelow ?? -1) >= target);
    r.lagCaughtUpMs = caught === undefined ? NaN : caught.at - killAt;
  }
}

function running(cluster: LocalCluster, id: string): boolean {
  try {
    cluster.pid(id);
    return true;
  } catch {
    return false;
  }
}

/** Each node's latest answer. */
function lastAnswers(polls: readonly Poll[]): Map<string, NodeSample> {
  const last = new Map<string, NodeSample>();
  for (const p of polls) for (const [id, n] of Object.entries(p.nodes)) if (n !== null) last.set(id, n);
  return last;
}

/** Notes, from a poll `t` ms after the kill, the first leader claim and the first poll with exactly one leader and every live node answering. */
function electionSeen(r: RoundResult, p: Poll, t: number): void {
  const answers = Object.entries(p.nodes);
  const leaders = answers.filter(([, n]) => n?.leader === true);
  if (leaders.length > 0 && !Number.isFinite(r.anyLeaderMs)) r.anyLeaderMs = t;
  if (Number.isFinite(r.leaderMs) || leaders.length !== 1 || answers.some(([, n]) => n === null)) return;
  const [id, n] = leaders[0] ?? ['', null];
  r.leaderMs = t;
  r.newLeader = id;
  r.ballotAtElection = n?.ballotRound ?? NaN;
  r.ballotRounds = r.ballotAtElection - r.ballotBefore;
}

// ---------------------------------------------------------------- report

function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, leftCols = 1): string {
  const cells = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => '  ' + r.map((c, i) => (i < leftCols ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

interface Stat {
  readonly n: number;
  readonly median: number;
  readonly p90: number;
  readonly max: number;
}

function stat(xs: readonly number[]): Stat {
  const sorted = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return { n: sorted.length, median: median(sorted), p90: percentile(sorted, 90), max: sorted[sorted.length - 1] ?? NaN };
}

interface SeriesSummary {
  readonly series: SeriesName;
  readonly rounds: number;
  readonly failed: number;
  readonly leaderMs: Stat;
  readonly putMs: Stat;
  readonly ballotRounds: Stat;
  readonly dualLeaderRounds: number;
  readonly lagSlots: Stat;
  /** Rounds in which the lagging node was elected (mayRun should keep it from running while behind). */
  readonly laggingElectedRounds: number;
  readonly rejoinBallotRounds: Stat;
  /** Rounds in which the lead changed hands while the killed node rejoined. */
  readonly rejoinLeaderChangedRounds: number;
  /** Rounds in which two nodes claimed to lead in one poll while the killed node rejoined. */
  readonly rejoinDualLeaderRounds: number;
  readonly loadAverage1m: Stat;
}

function summarize(series: SeriesName, rs: readonly RoundResult[]): SeriesSummary {
  return {
    series,
    rounds: rs.length,
    failed: rs.filter((r) => !r.ok).length,
    leaderMs: stat(rs.map((r) => r.leaderMs)),
    putMs: stat(rs.map((r) => r.putMs)),
    ballotRounds: stat(rs.map((r) => r.ballotRounds)),
    dualLeaderRounds: rs.filter((r) => r.dualLeader).length,
    lagSlots: stat(rs.map((r) => r.lagSlots ?? NaN)),
    rejoinBallotRounds: stat(rs.map((r) => r.rejoinBallotRounds)),
    laggingElectedRounds: rs.filter((r) => r.lagging !== null && r.newLeader === r.lagging).length,
    rejoinLeaderChangedRounds: rs.filter((r) => r.rejoinLeaderChanges.length > 1).length,
    rejoinDualLeaderRounds: rs.filter((r) => r.rejoinLeaderChanges.some((c) => c.includes('+'))).length,
    loadAverage1m: stat(rs.map((r) => r.loadAverage1m)),
  };
}

function summaryTable(sums: readonly SeriesSummary[]): string {
  const row = (s: SeriesSummary, name: string, x: Stat, digits = 0): string[] => [s.series, name, `${x.n}/${s.rounds}`, fmt(x.median, digits), fmt(x.p90, digits), fmt(x.max, digits)];
  const rows = sums.flatMap((s) => [
    row(s, 'one leader in status (ms)', s.leaderMs),
    row(s, 'first put after kill acked (ms)', s.putMs),
    row(s, 'ballot rounds spent', s.ballotRounds, 1),
    row(s, 'ballot rounds while the killed node rejoined', s.rejoinBallotRounds, 1),
    ...(s.series === 'lag' ? [row(s, 'lagging node behind (slots)', s.lagSlots)] : []),
    row(s, 'load average (1 min)', s.loadAverage1m, 2),
  ]);
  const counts = sums.map(
    (s) =>
      `  ${s.series}: ${s.failed} of ${s.rounds} rounds failed; two nodes claimed to lead in one poll in ${s.dualLeaderRounds}` +
      (s.series === 'lag' ? `; the lagging node was elected in ${s.laggingElectedRounds}` : '') +
      `; while the killed node rejoined, the lead changed hands in ${s.rejoinLeaderChangedRounds} and two nodes claimed it in one poll in ${s.rejoinDualLeaderRounds}`,
  );
  return `${table(['series', 'measure', 'rounds', 'median', 'p90', 'max'], rows, 2)}\n\n${counts.join('\n')}`;
}

function roundsTable(rs: readonly RoundResult[]): string {
  const rows = rs.map((r) => [
    r.series,
    String(r.round + 1),
    `${r.killed}->${r.newLeader || '?'}`,
    r.lagging ?? '-',
    fmt(r.lagSlots ?? NaN),
    fmt(r.leaderMs),
    fmt(r.putMs),
    fmt(r.ballotRounds),
    r.dualLeader ? `yes @${r.dualLeaderAt.slice(0, 3).join(',')}` : 'no',
    fmt(r.lagCaughtUpMs),
    String(r.pollsMissingAfterKill),
    `${fmt(r.catchupMs)} ms, ${fmt(r.rejoinBallotRounds)} b, ${r.rejoinLeaderChanges.join('>')}`,
    fmt(r.loadAverage1m, 2),
    r.ok ? 'ok' : `FAILED: ${r.failure ?? ''}`,
  ]);
  return table(['series', '#', 'leader', 'lagging', 'behind', 'leader ms', 'put ms', 'ballots', 'two leaders', 'lag caught ms', 'missed polls', 'rejoin: catch-up, ballots, leaders', 'load avg', 'result'], rows, 2);
}

function commandLine(): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = process.argv.slice(2).map(quote).join(' ');
  if (process.env.npm_lifecycle_event === 'bench:failover') return `npm run bench:failover${args === '' ? '' : ` -- ${args}`}`;
  return `node ${process.execArgv.map(quote).join(' ')} ${quote(process.argv[1] ?? 'bench/failover.ts')}${args === '' ? '' : ` ${args}`}`.replace(/\s+/g, ' ');
}

function gitInfo(): { commit: string; branch: string; dirty: boolean } | { error: string } {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO, timeout: 5_000, encoding: 'utf8' }).trim();
    // Untracked files (a worktree's node_modules link) do not change what runs.
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return { commit: git('rev-parse', 'HEAD'), branch: git('rev-parse', '--abbrev-ref', 'HEAD'), dirty };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function machineInfo() {
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    /** 1, 5 and 15 minute load averages at the start: other work on the machine skews every figure. */
    loadAverageAtStart: loadavg(),
    node: process.version,
    platform: process.platform,
    kernel: release(),
  };
}

function knobsLine(o: Options): string {
  const env = (name: string) => (process.env[name] ?? '') || 'unset';
  return (
    `${o.rounds} rounds of ${o.series.join(' + ')}; ${o.clients} clients x ${o.inFlight} puts in flight, ${o.valueBytes} B values; ` +
    `warm-up ${o.warmupMs} ms, lag ${o.lagMs} ms by ${o.lagBy}, poll ${o.pollMs} ms, settle ${o.settleMs} ms; ` +
    `SHARDPAX_TUNING ${env('SHARDPAX_TUNING')}, SHARDPAX_SERVER_NODE_ARGS ${env('SHARDPAX_SERVER_NODE_ARGS')}`
  );
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const command = commandLine();
  const git = gitInfo();
  const machine = machineInfo();
  const startedAt = new Date().toISOString();
  const header = [
    'shardpax failover benchmark',
    `command:  ${command}`,
    `commit:   ${'commit' in git ? `${git.commit} (${git.branch}${git.dirty ? ', uncommitted changes' : ''})` : `unknown (${git.error})`}`,
    `machine:  ${machine.cores} cores (${machine.cpuModel}), ${fmt(machine.memoryBytes / 2 ** 30, 1)} GiB memory, node ${machine.node}, ${machine.platform} ${machine.kernel}; ` +
      `load average ${machine.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} at the start`,
    `knobs:    ${knobsLine(o)}`,
  ].join('\n');
  console.log(header);

  const { cluster } = await LocalCluster.create({ replicas: 3 });
  const interrupt = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    progress.clear();
    if (signals === 1) {
      console.error(`\n${signal}: ending the current round, then the report and cleanup (again to kill at once)`);
      interrupt.abort();
    } else {
      cluster.killNow();
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => cluster.killNow());

  const b: Bench = { o, cluster, interrupted: interrupt.signal };
  const results: RoundResult[] = [];
  let aborted: string | undefined;
  try {
    cluster.startAll();
    const leader = await cluster.awaitLeader(LEADER_WAIT_MS);
    await cluster.joinKvGroups(LEADER_WAIT_MS); // a KV group serves no key until it joined
    console.log(`cluster:  ${cluster.nodes.map((n) => `${n.id} ${n.address}`).join(', ')}; leader ${leader.id}; folder ${cluster.dir}`);
    outer: for (let i = 0; i < o.rounds; i++) {
      for (const series of o.series) {
        if (interrupt.signal.aborted) break outer;
        progress.set(`${series} round ${i + 1}/${o.rounds}: load, ${series === 'lag' ? 'a follower stopped, ' : ''}then the leader killed ...`);
        const r = await runRound(b, series, i);
        results.push(r);
        progress.clear();
        console.log(
          `${series.padEnd(7)} ${String(i + 1).padStart(2)}/${o.rounds}: ${r.killed} killed -> ${r.newLeader || 'none'} leads after ${fmt(r.leaderMs)} ms, ` +
            `put after ${fmt(r.putMs)} ms, ${fmt(r.ballotRounds)} ballot rounds` +
            (r.lagging === null ? '' : `; ${r.lagging} lagged ${fmt(r.lagSlots ?? NaN)} slots${r.lagTransfer === '' ? '' : ` (transfer from ${r.lagTransfer})`}`) +
            (r.dualLeader ? `; TWO LEADERS at ${r.dualLeaderAt.join(',')} ms` : '') +
            `; load avg ${fmt(r.loadAverage1m, 2)}` +
            (r.ok ? '' : `; FAILED: ${r.failure ?? ''}`),
        );
      }
    }
  } catch (err) {
    aborted = err instanceof Error ? err.message : String(err);
    progress.clear();
    console.error(`benchmark stopped: ${aborted}`);
    console.error(cluster.logTails(20));
  } finally {
    progress.clear();
    await cluster.stop();
  }

  const summaries = o.series.map((s) => summarize(s, results.filter((r) => r.series === s)));
  console.log(`\n${header}\n`);
  if (results.length > 0) console.log(`${roundsTable(results)}\n`);
  console.log(summaryTable(summaries));
  console.log(
    '\nleader = a status poll had every live node answering and exactly one leading; put = the first of one put per client\n' +
      'submitted after the kill (one sent before may have been answered by the killed leader); times from the SIGKILL;\n' +
      "ballot rounds = the new leader's round over the highest before the kill; rejoin = while the killed node restarts and catches up.\n" +
      `Load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}.`,
  );

  const report = {
    benchmark: 'failover',
    command,
    startedAt,
    finishedAt: new Date().toISOString(),
    loadAverageAtEnd: loadavg(),
    git,
    machine,
    knobs: { ...o, tuning: process.env.SHARDPAX_TUNING ?? null, serverNodeArgs: process.env.SHARDPAX_SERVER_NODE_ARGS ?? null },
    aborted: aborted ?? null,
    summaries,
    rounds: results,
  };
  try {
    mkdirSync(dirname(o.json), { recursive: true });
    writeFileSync(o.json, JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    console.log(`figures: ${o.json}`);
  } catch (err) {
    console.error(`could not write ${o.json}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (interrupt.signal.aborted) return 130;
  return aborted !== undefined || results.some((r) => !r.ok) || results.length < o.rounds * o.series.length ? 1 : 0;
}

// Exits explicitly: a client connection grpc-js keeps open must not hold the process.
process.exit(await main());
