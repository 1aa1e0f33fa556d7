// A stalled client must cost the server bounded memory (issue 6, item 6).
// The server (a child process, so its RSS is its own) answers every Submit
// with a 1 MiB result. Five grpc-js clients reach it through a proxy that
// stops reading the server's bytes, so the server's socket to them fills and
// stays full, as with a client that never reads; each then holds 64 calls.
// The server's memory growth must stay bounded, and a client that reads
// normally must keep getting answers meanwhile.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { createInterface, type Interface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { KvServiceClient } from '../src/gen/shardpax/v1/client.js';
import type { AmoCommand, AmoResult } from '../src/gen/shardpax/v1/session.js';
import { CLUSTER_ID_METADATA } from '../src/runtime/cluster-id-metadata.js';
import { DEFAULT_MAX_UNFLUSHED_BYTES_PER_CONNECTION, type GatewayStats } from '../src/server/client-gateway.js';

const SCRIPT = new URL('./support/gateway-process.ts', import.meta.url).pathname;
const CLUSTER_ID = 'stall-test';
const REPLY_BYTES = 1 << 20;
const STALLED_CLIENTS = 5;
const CALLS_PER_STALLED_CLIENT = 64;
const MIB = 1 << 20;
/** 5 x 64 x 1 MiB = 320 MiB would be held without a bound; with it, 5 x 8 MiB. */
const MAX_HELD_BYTES = 64 * MIB;
/** RSS also keeps some of the churn of refused 1 MiB answers (allocator, heap). */
const MAX_RSS_GROWTH_BYTES = 160 * MIB;

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups.reverse()) c();
});

interface Mem {
  rss: number;
  arrayBuffers: number;
  external: number;
  heapUsed: number;
  answered: number;
  stats: GatewayStats;
}

/** The server child: port, and a memory probe (after a full GC). */
async function startServer(): Promise<{ port: number; mem: () => Promise<Mem> }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', SCRIPT, '--reply-bytes', String(REPLY_BYTES), '--cluster-id', CLUSTER_ID],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  cleanups.push(() => child.kill('SIGKILL'));
  if (child.stdout === null || child.stdin === null) throw new Error('no stdio');
  const stdin = child.stdin;
  const lines: Interface = createInterface({ input: child.stdout });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const first = await next();
  expect(first).toMatch(/^listening \d+$/);
  return {
    port: Number(first.split(' ')[1]),
    mem: async () => {
      const line = next();
      stdin.write('mem\n');
      return JSON.parse(await line) as Mem;
    },
  };
}

/** A TCP proxy whose connections can stop reading what the server sends. */
async function startProxy(targetPort: number): Promise<{ port: number; stall: () => void; resume: () => void }> {
  const pairs: Array<{ up: Socket; down: Socket }> = [];
  const server: Server = createServer((down) => {
    const up = tcpConnect(targetPort, '127.0.0.1');
    pairs.push({ up, down });
    down.pipe(up);
    up.pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
    };
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const { up } of pairs) up.destroy();
    server.close();
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no proxy address');
  return {
    port: address.port,
    stall: () => {
      for (const { up } of pairs) {
        up.unpipe();
        up.pause();
      }
    },
    resume: () => {
      for (const { up, down } of pairs) up.pipe(down);
    },
  };
}

function client(port: number): KvServiceClient {
  const c = new KvServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  cleanups.push(() => c.close());
  return c;
}

let nextSeq = 1;
function command(): AmoCommand {
  return { kind: { $case: 'request', value: { session: 1, seq: nextSeq++, ackedBelow: 0, command: new Uint8Array(8) } }, shard: 0 };
}

function submit(c: KvServiceClient, deadlineMs: number): Promise<AmoResult> {
  const metadata = new grpc.Metadata();
  metadata.set(CLUSTER_ID_METADATA, CLUSTER_ID);
  return new Promise((resolve, reject) => {
    c.submit({ group: 1, command: command() }, metadata, { deadline: Date.now() + deadlineMs }, (err, res) =>
      err === null ? resolve(res) : reject(err),
    );
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ClientGateway with stalled clients', () => {
  it('holds bounded memory while 5 stalled clients each hold 64 calls of 1 MiB answers', async () => {
    const server = await startServer();
    const proxy = await startProxy(server.port);
    const stalled = Array.from({ length: STALLED_CLIENTS }, () => client(proxy.port));
    // Connect each (one answered call), then stop reading, then pile up calls.
    await Promise.all(stalled.map((c) => submit(c, 10_000)));
    const before = await server.mem();
    proxy.stall();
    const outcomes: Array<Promise<string>> = [];
    for (const c of stalled) {
      for (let i = 0; i < CALLS_PER_STALLED_CLIENT; i++) {
        outcomes.push(submit(c, 30_000).then(() => 'answered', (err: grpc.ServiceError) => grpc.status[err.code]));
      }
    }
    // Meanwhile a client that reads gets its answers. Watch the server until every
    // stalled call has reached it (and 2 s at least), well before its keepalive
    // would end the stalled connections (10 s + 5 s).
    const normal = client(server.port);
    const stalledCalls = STALLED_CLIENTS * CALLS_PER_STALLED_CLIENT;
    const peak = { rss: before.rss, arrayBuffers: before.arrayBuffers, unflushedBytes: 0, unflushedConnections: 0 };
    let last = before;
    let normalAnswers = 0;
    const minEnd = Date.now() + 2_000;
    for (;;) {
      const r = await submit(normal, 5_000);
      if (r.kind?.$case === 'result' && r.kind.value.result.length === REPLY_BYTES) normalAnswers++;
      last = await server.mem();
      peak.rss = Math.max(peak.rss, last.rss);
      peak.arrayBuffers = Math.max(peak.arrayBuffers, last.arrayBuffers);
      peak.unflushedBytes = Math.max(peak.unflushedBytes, last.stats.unflushedBytes);
      peak.unflushedConnections = Math.max(peak.unflushedConnections, last.stats.unflushedConnections);
      const allArrived = last.answered >= STALLED_CLIENTS + stalledCalls + normalAnswers;
      if (allArrived && normalAnswers >= 5 && Date.now() >= minEnd) break;
      await sleep(100);
    }
    const growth = peak.rss - before.rss;
    console.log(
      `stalled-client memory: rss ${(before.rss / MIB).toFixed(1)} -> ${(peak.rss / MIB).toFixed(1)} MiB ` +
        `(+${(growth / MIB).toFixed(1)}), arrayBuffers ${(before.arrayBuffers / MIB).toFixed(1)} -> ` +
        `${(peak.arrayBuffers / MIB).toFixed(1)} MiB, calls reaching the node ${last.answered}, ` +
        `normal answers ${normalAnswers}, gateway ${JSON.stringify(last.stats)}`,
    );
    expect(peak.arrayBuffers).toBeLessThan(MAX_HELD_BYTES);
    expect(growth).toBeLessThan(MAX_RSS_GROWTH_BYTES);
    // The bound is the gateway's: it refused answers, and holds at most its bound per connection.
    expect(last.stats.refusedAnswers).toBeGreaterThan(0);
    expect(peak.unflushedConnections).toBe(STALLED_CLIENTS);
    expect(peak.unflushedBytes).toBeLessThanOrEqual(STALLED_CLIENTS * DEFAULT_MAX_UNFLUSHED_BYTES_PER_CONNECTION);

    // Once the clients read again they get every call's outcome, and the server lets go of it all.
    proxy.resume();
    const results = await Promise.all(outcomes);
    const answered = results.filter((r) => r === 'answered').length;
    expect(answered).toBeGreaterThan(0);
    expect(results.filter((r) => r !== 'answered').every((r) => r === 'RESOURCE_EXHAUSTED')).toBe(true);
    const after = await server.mem();
    expect(after.stats.unflushedBytes).toBe(0);
    expect(after.stats.unflushedConnections).toBe(0);
  }, 30_000);
});
