// Put throughput: starts a local N-node group in a temp folder (as `shardpax
// dev` lays it out), drives closed-loop puts through the SDK at each
// concurrency level, and reports ops/s, latency, CPU per op (servers and this
// client), fsyncs per op and the leader's RSS. Loopback only; every wait is
// bounded.
//
//   node --import tsx bench/put-throughput.ts [--replicas 3] [--concurrency 1,16,64,256]
//        [--seconds 10] [--value-bytes 100] [--json out.json]
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { ReplicaStatus } from '../src/client/admin.js';
import { LocalCluster, sleep } from '../src/cli/local-cluster.js';
import { connect, type Db } from '../src/client/db.js';

const CLK_TCK = 100; // USER_HZ; /proc/<pid>/stat utime/stime are in these ticks (checked against process.cpuUsage at the end)
const KEYS = 10_000;
const WARMUP_MS = 2_000;
const PER_CLIENT = 64; // concurrent ops per connect() (its window), per DESIGN §6
const OP_TIMEOUT_MS = 10_000;
const LEADER_TIMEOUT_MS = 30_000;

interface Options {
  readonly replicas: number;
  readonly concurrency: readonly number[];
  readonly seconds: number;
  readonly valueBytes: number;
  readonly json: string | undefined;
}

interface LevelResult {
  concurrency: number;
  clients: number;
  seconds: number;
  ops: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  errorSamples: Record<string, number>;
  /** Server CPU (user+system) summed over all nodes, per op. */
  serverCpuUsPerOp: number;
  serverCpuUsPerOpByNode: Record<string, number>;
  /** Cores busy on the servers / in this process during the window. */
  serverCores: number;
  /** Share of the server CPU spent in the kernel. */
  serverSysShare: number;
  clientCpuUsPerOp: number;
  clientCores: number;
  /** Event-loop utilization of this process (1 = its JS thread never idles). */
  clientElu: number;
  /** Cores used by the leader's main (event-loop) thread: near 1 means it is the bottleneck. */
  leaderMainCores: number;
  /** Cores busy with anything else on the machine (noise). */
  otherCores: number;
  leader: string;
  leaderChanged: boolean;
  leaderFsyncsPerOp: number;
  allFsyncsPerOp: number;
  /** Log slots the leader applied per op (< 1 when commands are batched). */
  leaderSlotsPerOp: number;
  leaderRssMb: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      replicas: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '1,16,64,256' },
      seconds: { type: 'string', default: '10' },
      'value-bytes': { type: 'string', default: '100' },
      json: { type: 'string' },
    },
    strict: true,
  });
  const int = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${v}`);
    return n;
  };
  const concurrency = values.concurrency.split(',').map((s) => int('concurrency', s.trim(), 1, 4096));
  return {
    replicas: int('replicas', values.replicas, 1, 9),
    concurrency,
    seconds: int('seconds', values.seconds, 1, 600),
    valueBytes: int('value-bytes', values['value-bytes'], 0, 1 << 20),
    json: values.json,
  };
}

interface Cpu {
  readonly userMs: number;
  readonly sysMs: number;
}

/** utime and stime of a process (all its threads), or of one thread with `tid`, in ms. */
function procCpu(pid: number, tid?: number): Cpu {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  // Fields after the ")" closing comm start at field 3 (state); utime is 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return { userMs: (utime * 1000) / CLK_TCK, sysMs: (stime * 1000) / CLK_TCK };
}

/** CPU busy on the whole machine (all cores, not idle/iowait) since boot, in ms. */
function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  const total = f.reduce((a, b) => a + b, 0);
  return ((total - (f[3] ?? 0) - (f[4] ?? 0)) * 1000) / CLK_TCK;
}

interface Snapshot {
  readonly at: number;
  readonly cpu: Map<string, Cpu>;
  /** Main (event-loop) thread of each node: its tid is the pid. */
  readonly mainCpu: Map<string, Cpu>;
  readonly elu: EventLoopUtilization;
  readonly client: NodeJS.CpuUsage;
  readonly machineMs: number;
  readonly status: Map<string, ReplicaStatus>;
}

async function snapshot(cluster: LocalCluster): Promise<Snapshot> {
  const at = performance.now();
  const client = process.cpuUsage();
  const machineMs = machineBusyMs();
  const cpu = new Map<string, Cpu>();
  const mainCpu = new Map<string, Cpu>();
  for (const n of cluster.nodes) {
    try {
      cpu.set(n.id, procCpu(cluster.pid(n.id)));
      mainCpu.set(n.id, procCpu(cluster.pid(n.id), cluster.pid(n.id)));
    } catch {
      // the process is gone: its numbers stay unknown (NaN); main() reports the crash
    }
  }
  const elu = performance.eventLoopUtilization();
  const status = await cluster.statuses(2_000);
  return { at, cpu, mainCpu, elu, client, machineMs, status };
}

/** Server CPU and fsyncs with no load: the floor under every level's numbers. */
async function idleBaseline(cluster: LocalCluster, ms: number): Promise<{ serverCores: number; fsyncsPerSec: number }> {
  const a = await snapshot(cluster);
  await sleep(ms);
  const b = await snapshot(cluster);
  const wall = (b.at - a.at) / 1000;
  let cpuMs = 0;
  let fsyncs = 0;
  for (const n of cluster.nodes) {
    const ca = a.cpu.get(n.id);
    const cb = b.cpu.get(n.id);
    if (ca !== undefined && cb !== undefined) cpuMs += cb.userMs + cb.sysMs - ca.userMs - ca.sysMs;
    fsyncs += (b.status.get(n.id)?.syncedWrites ?? NaN) - (a.status.get(n.id)?.syncedWrites ?? NaN);
  }
  return { serverCores: cpuMs / 1000 / wall, fsyncsPerSec: fsyncs / wall };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function runLevel(cluster: LocalCluster, concurrency: number, o: Options): Promise<LevelResult> {
  const clients = Math.ceil(concurrency / PER_CLIENT);
  const dbs: Db[] = [];
  let stop = false;
  try {
    for (let i = 0; i < clients; i++) {
      dbs.push(await connect({ cluster: cluster.file, timeoutMs: OP_TIMEOUT_MS, window: PER_CLIENT, connectTimeoutMs: 5_000 }));
    }
    const value = randomBytes(o.valueBytes);
    const latencies: number[] = [];
    const errorSamples: Record<string, number> = {};
    let errors = 0;
    let measureStart = Infinity;
    let measureEnd = Infinity;

    // Counts ops that complete inside [measureStart, measureEnd].
    const worker = async (db: Db): Promise<void> => {
      while (!stop) {
        const t0 = performance.now();
        let failure: string | undefined;
        try {
          await db.put(`key-${Math.floor(Math.random() * KEYS)}`, value);
        } catch (err) {
          failure = err instanceof Error ? `${err.name}: ${err.message.replace(/"key-\d+"/, '"key-N"')}` : String(err);
        }
        const t1 = performance.now();
        const counted = t1 >= measureStart && t1 <= measureEnd;
        if (failure === undefined) {
          if (counted) latencies.push(t1 - t0);
        } else {
          if (counted) {
            errors += 1;
            errorSamples[failure] = (errorSamples[failure] ?? 0) + 1;
          }
          await sleep(10); // no hot loop on a failing client
        }
      }
    };
    const workers = Array.from({ length: concurrency }, (_, i) => worker(dbs[Math.floor(i / PER_CLIENT)] as Db));

    await sleep(WARMUP_MS);
    const before = await snapshot(cluster);
    measureStart = performance.now();
    await sleep(o.seconds * 1000);
    measureEnd = performance.now();
    const after = await snapshot(cluster);
    stop = true;
    const drained = await Promise.race([Promise.all(workers).then(() => true), sleep(OP_TIMEOUT_MS + 2_000).then(() => false)]);
    if (!drained) console.error(`  warning: workers still busy ${OP_TIMEOUT_MS + 2_000} ms after the window closed`);

    const seconds = (measureEnd - measureStart) / 1000;
    const ops = latencies.length;
    latencies.sort((a, b) => a - b);
    const perOp = (x: number) => (ops > 0 ? x / ops : NaN);
    const cpuDelta = (id: string, f: (c: Cpu) => number = (c) => c.userMs + c.sysMs) => {
      const a = after.cpu.get(id);
      const b = before.cpu.get(id);
      return a !== undefined && b !== undefined ? f(a) - f(b) : NaN;
    };
    const serverCpuMs = cluster.nodes.reduce((sum, n) => sum + cpuDelta(n.id), 0);
    const serverSysMs = cluster.nodes.reduce((sum, n) => sum + cpuDelta(n.id, (c) => c.sysMs), 0);
    const clientCpuUs = after.client.user + after.client.system - before.client.user - before.client.system;
    const leaderOf = (s: Snapshot) => [...s.status.values()].find((x) => x.leader)?.node ?? '';
    const leader = leaderOf(after) || leaderOf(before);
    const delta = (id: string, f: (s: ReplicaStatus) => number) => {
      const a = after.status.get(id);
      const b = before.status.get(id);
      return a !== undefined && b !== undefined ? f(a) - f(b) : NaN;
    };
    const allFsyncs = cluster.nodes.reduce((sum, n) => sum + delta(n.id, (s) => s.syncedWrites), 0);
    const wall = (after.at - before.at) / 1000;

    return {
      concurrency,
      clients,
      seconds,
      ops,
      opsPerSec: ops / seconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies[latencies.length - 1] ?? NaN,
      errors,
      errorSamples,
      serverCpuUsPerOp: perOp(serverCpuMs * 1000),
      serverCpuUsPerOpByNode: Object.fromEntries(cluster.nodes.map((n) => [n.id, perOp(cpuDelta(n.id) * 1000)])),
      serverCores: serverCpuMs / 1000 / wall,
      serverSysShare: serverCpuMs > 0 ? serverSysMs / serverCpuMs : NaN,
      clientCpuUsPerOp: perOp(clientCpuUs),
      clientCores: clientCpuUs / 1e6 / wall,
      clientElu: performance.eventLoopUtilization(after.elu, before.elu).utilization,
      leaderMainCores: (() => {
        const a = after.mainCpu.get(leader);
        const b = before.mainCpu.get(leader);
        return a !== undefined && b !== undefined ? (a.userMs + a.sysMs - b.userMs - b.sysMs) / 1000 / wall : NaN;
      })(),
      otherCores: (after.machineMs - before.machineMs - serverCpuMs) / 1000 / wall - clientCpuUs / 1e6 / wall,
      leader,
      leaderChanged: leaderOf(before) !== leaderOf(after),
      leaderFsyncsPerOp: perOp(delta(leader, (s) => s.syncedWrites)),
      allFsyncsPerOp: perOp(allFsyncs),
      leaderSlotsPerOp: perOp(delta(leader, (s) => s.appliedBelow)),
      leaderRssMb: (after.status.get(leader)?.rssBytes ?? NaN) / 2 ** 20,
    };
  } finally {
    stop = true; // workers exit on their next turn, also when this level failed
    await Promise.allSettled(dbs.map((db) => db.close()));
  }
}

const COLUMNS: ReadonlyArray<[string, (r: LevelResult) => string]> = [
  ['conc', (r) => String(r.concurrency)],
  ['ops/s', (r) => r.opsPerSec.toFixed(0)],
  ['p50 ms', (r) => fmt(r.p50Ms, 2)],
  ['p99 ms', (r) => fmt(r.p99Ms, 2)],
  ['max ms', (r) => fmt(r.maxMs, 1)],
  ['errors', (r) => String(r.errors)],
  ['srv µs/op', (r) => fmt(r.serverCpuUsPerOp, 0)],
  ['srv cores', (r) => fmt(r.serverCores, 2)],
  ['srv sys%', (r) => fmt(r.serverSysShare * 100, 0)],
  ['ldr main', (r) => fmt(r.leaderMainCores, 2)],
  ['cli µs/op', (r) => fmt(r.clientCpuUsPerOp, 0)],
  ['cli cores', (r) => fmt(r.clientCores, 2)],
  ['cli ELU', (r) => fmt(r.clientElu, 2)],
  ['other cores', (r) => fmt(r.otherCores, 2)],
  ['fsync/op ldr', (r) => fmt(r.leaderFsyncsPerOp, 3)],
  ['fsync/op all', (r) => fmt(r.allFsyncsPerOp, 3)],
  ['slots/op', (r) => fmt(r.leaderSlotsPerOp, 3)],
  ['ldr RSS MB', (r) => fmt(r.leaderRssMb, 0)],
];

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function table(rows: readonly LevelResult[]): string {
  const cells = [COLUMNS.map(([h]) => h), ...rows.map((r) => COLUMNS.map(([, f]) => f(r)))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells.map((row) => row.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseOptions();
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 2;
    return;
  }
  console.log(
    `put-throughput: ${o.replicas} replicas, concurrency ${o.concurrency.join(',')}, ${o.seconds} s per level ` +
      `(+${WARMUP_MS / 1000} s warm-up), ${o.valueBytes}-byte values, ${KEYS} keys, ${PER_CLIENT} ops per client`,
  );
  const { cluster } = await LocalCluster.create({ replicas: o.replicas });
  cluster.startAll();
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping the cluster`);
    void cluster.stop().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => cluster.killNow());

  const results: LevelResult[] = [];
  let idle: { serverCores: number; fsyncsPerSec: number } | undefined;
  try {
    const leader = (await cluster.awaitLeader(LEADER_TIMEOUT_MS)).id;
    await cluster.joinKvGroups(LEADER_TIMEOUT_MS); // a KV group serves no key until it joined
    const statuses = await cluster.statuses(2_000);
    for (const n of cluster.nodes) {
      const s = statuses.get(n.id);
      if (s !== undefined && s.pid !== cluster.pid(n.id)) console.error(`  warning: ${n.id} reports pid ${s.pid}, spawned ${cluster.pid(n.id)}`);
    }
    console.log(`cluster up in ${cluster.dir}: leader ${leader}`);
    idle = await idleBaseline(cluster, 2_000);
    console.log(`idle (2 s, no load): servers ${idle.serverCores.toFixed(3)} cores, ${idle.fsyncsPerSec.toFixed(1)} fsyncs/s`);
    for (const c of o.concurrency) {
      process.stdout.write(`level ${c}: ${Math.ceil(c / PER_CLIENT)} client(s) ... `);
      const r = await runLevel(cluster, c, o);
      results.push(r);
      console.log(
        `${r.opsPerSec.toFixed(0)} ops/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, errors ${r.errors}` +
          (r.leaderChanged ? ` (leader changed, now ${r.leader || 'none'})` : ''),
      );
      for (const [e, n] of Object.entries(r.errorSamples)) console.log(`  ${n} x ${e}`);
      if (cluster.crashed !== undefined) throw new Error(cluster.crashed);
    }
  } catch (err) {
    console.error(`benchmark failed: ${err instanceof Error ? err.message : String(err)}`);
    console.error(cluster.logTails(20));
    process.exitCode = 1;
  } finally {
    await cluster.stop();
  }

  if (results.length > 0) {
    console.log('\n' + table(results));
    console.log(
      'srv = CPU (user+sys) summed over all server processes; cli = this process (SDK + load loop); other = rest of the machine (noise);\n' +
        'ldr main = cores used by the leader\'s event-loop thread; cli ELU = event-loop utilization of this process;\n' +
        `fsync/op = synced LevelDB writes per put; slots/op = Paxos slots per put; machine has ${availableParallelism()} cores`,
    );
  }
  // /proc ticks vs process.cpuUsage for this process: a wrong CLK_TCK would show here.
  const self = procCpu(process.pid);
  const selfProc = self.userMs + self.sysMs;
  const u = process.cpuUsage();
  const selfUsage = (u.user + u.system) / 1000;
  if (selfUsage > 1_000 && Math.abs(selfProc / selfUsage - 1) > 0.2) {
    console.error(`warning: /proc/self/stat says ${selfProc.toFixed(0)} ms CPU, process.cpuUsage ${selfUsage.toFixed(0)} ms: is CLK_TCK not ${CLK_TCK}?`);
  }
  if (o.json !== undefined) {
    writeFileSync(o.json, JSON.stringify({ options: o, warmupMs: WARMUP_MS, keys: KEYS, perClient: PER_CLIENT, idle, results }, null, 2) + '\n');
    console.log(`wrote ${o.json}`);
  }
}

await main();
