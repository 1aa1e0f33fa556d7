// The SDK through its public entry (`import ... from 'shardpax'`, the
// package's self-reference): connecting to nothing, a round trip against a
// real single-node cluster in this process, input limits checked before the
// wire, arguments of the wrong type (as plain JavaScript passes them) refused
// with the argument named, pipelining, close, timeouts that say whether a
// write may have been applied, and the cluster id every call names.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ClientClosedError,
  ClusterUnreachableError,
  connect,
  type Db,
  InvalidArgumentError,
  KvInputError,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  OperationTimeoutError,
  ShardpaxError,
  WrongClusterError,
} from 'shardpax';
import { freePort } from '../src/cli/local-cluster.js';
import { fetchStatus, type ReplicaStatus, replicaStatus } from '../src/client/admin.js';
import { connectShardMaster } from '../src/client/shard-master-admin.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNode, loadClusterConfig } from '../src/runtime/cluster-config.js';
import { initNodeStorage } from '../src/server/node-storage.js';
import { type ServerNode, startServerNode } from '../src/server/server-node.js';
import { clusterJson } from './support/cluster-file.js';

const dirs: string[] = [];
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      if (a === null || typeof a === 'string') reject(new Error('no port'));
      else resolve(a.port);
    });
  });
}

/** What `p` rejects with; fails the test if it resolves. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** The SDK as plain JavaScript sees it: nothing stops an argument of the wrong type. */
interface UntypedDb {
  put(key?: unknown, value?: unknown): Promise<unknown>;
  get(key?: unknown): Promise<unknown>;
  delete(key?: unknown): Promise<unknown>;
}
const untypedConnect = connect as unknown as (options?: unknown) => Promise<Db>;

/** A misuse case: the call, the argument its error must name, and words the error must hold. */
interface Misuse {
  readonly call: () => Promise<unknown>;
  readonly argument: string;
  readonly says: readonly string[];
}

/** Each call rejects at once with an InvalidArgumentError (a KvInputError) naming the argument; nothing is coerced. */
async function expectRefused(cases: readonly Misuse[]): Promise<void> {
  for (const c of cases) {
    const started = performance.now();
    const err = await rejection(c.call());
    const ms = performance.now() - started;
    expect(err, `${c.argument}: ${String(err)}`).toBeInstanceOf(InvalidArgumentError);
    expect(err).toBeInstanceOf(KvInputError);
    if (!(err instanceof InvalidArgumentError)) continue;
    expect(err.name).toBe('InvalidArgumentError');
    expect(err.argument).toBe(c.argument);
    expect(err.mayHaveTakenEffect).toBe(false);
    expect(err.expected.length).toBeGreaterThan(0);
    expect(err.message).toContain(`${c.argument} must be ${err.expected}`);
    for (const s of c.says) expect(err.message).toContain(s);
    expect(ms).toBeLessThan(200); // no round trip
  }
}

/** The node's replica of the KV group (group 1). */
function kv(node: ServerNode): ReplicaStatus {
  const s = replicaStatus(node.status(), 1);
  if (s === undefined) throw new Error(`${node.id} hosts no replica of group 1`);
  return s;
}

/**
 * The node's decided-slot count once the log has been quiet for 1.5 s. An
 * earlier call that was slow to answer (a loaded machine) has been sent
 * again after the session's 500 ms retry, and each copy takes a slot: wait
 * for those before counting slots to show that a refused call proposed nothing.
 */
async function quietLog(node: ServerNode | undefined): Promise<number | undefined> {
  const deadline = Date.now() + 15_000;
  let last = node === undefined ? undefined : kv(node).decidedBelow;
  let since = Date.now();
  while (Date.now() - since < 1_500 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const now = node === undefined ? undefined : kv(node).decidedBelow;
    if (now !== last) [last, since] = [now, Date.now()];
  }
  return last;
}

/** A cluster file of cluster `clusterId` with one node at `address`, in a new folder. */
function clusterFile(clusterId: string, address: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'shardpax-sdk-'));
  dirs.push(dir);
  const file = join(dir, 'cluster.json');
  writeFileSync(file, JSON.stringify(clusterJson(clusterId, [{ id: 'n1', address, dataDir: 'n1' }])));
  return file;
}

/** A 1-node cluster served from this process, its leader elected, KV group 1 joined at the shard master (so it owns every shard). */
async function startSingleNode(
  clusterId = 'c1',
  at?: string,
): Promise<{ node: ServerNode; file: string; address: string }> {
  const address = at ?? `127.0.0.1:${await freePort()}`;
  const file = clusterFile(clusterId, address);
  const cluster = loadClusterConfig(file);
  await initNodeStorage(cluster, findNode(cluster, 'n1'));
  const node = await startServerNode(cluster, 'n1');
  const deadline = Date.now() + 5_000;
  while (!kv(node).leader) {
    if (Date.now() > deadline) {
      await node.close();
      throw new Error('the single node did not elect itself within 5 s');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const admin = await connectShardMaster({ cluster: file, timeoutMs: 10_000 });
  try {
    await admin.join(1, ['n1']);
  } finally {
    await admin.close();
  }
  // Group 1 serves once its leader installed the join's config: a first read waits for that, so tests with short timeouts do not.
  const warm = await connect({ cluster: file, timeoutMs: 10_000 });
  try {
    await warm.get('warm-up');
  } finally {
    await warm.close();
  }
  return { node, file, address };
}

describe('connect() when no server answers', () => {
  it('rejects with ClusterUnreachableError when nothing listens', async () => {
    const port = await freePort();
    const started = performance.now();
    const err = await rejection(connect({ endpoints: [`127.0.0.1:${port}`], connectTimeoutMs: 500 }));
    const ms = performance.now() - started;
    expect(err).toBeInstanceOf(ClusterUnreachableError);
    expect(err).toBeInstanceOf(ShardpaxError);
    if (!(err instanceof ClusterUnreachableError)) return;
    expect(err.mayHaveTakenEffect).toBe(false);
    expect(err.code).toBe('CLUSTER_UNREACHABLE');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(ms).toBeLessThan(2_000);
  });

  it('gives up after connectTimeoutMs on a server that accepts but never answers', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s)); // takes the TCP connection, never speaks HTTP/2
    const port = await listen(silent);
    try {
      const started = performance.now();
      const err = await rejection(connect({ endpoints: [`127.0.0.1:${port}`], connectTimeoutMs: 500 }));
      const ms = performance.now() - started;
      expect(err).toBeInstanceOf(ClusterUnreachableError);
      if (err instanceof ClusterUnreachableError) expect(err.mayHaveTakenEffect).toBe(false);
      expect(ms).toBeGreaterThanOrEqual(400);
      expect(ms).toBeLessThan(2_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('connect() options from plain JavaScript', () => {
  it('are checked before anything is dialled: wrong types, unknown options (typos), bad endpoints', async () => {
    const ok = `127.0.0.1:${await freePort()}`;
    await expectRefused([
      { call: () => untypedConnect(), argument: 'options', says: ['connect:', 'an object', 'got undefined'] },
      { call: () => untypedConnect('data/cluster.json'), argument: 'options', says: ['got string "data/cluster.json"'] },
      { call: () => untypedConnect(null), argument: 'options', says: ['got null'] },
      { call: () => untypedConnect({ timeout: 100, endpoints: [ok] }), argument: 'options.timeout', says: ['not an option', 'timeoutMs'] },
      { call: () => untypedConnect({ timeoutMs: '100', endpoints: [ok] }), argument: 'options.timeoutMs', says: ['milliseconds', 'got string "100"'] },
      { call: () => untypedConnect({ timeoutMs: 0, endpoints: [ok] }), argument: 'options.timeoutMs', says: ['got number 0'] },
      { call: () => untypedConnect({ timeoutMs: 1.5, endpoints: [ok] }), argument: 'options.timeoutMs', says: ['got number 1.5'] },
      { call: () => untypedConnect({ timeoutMs: NaN, endpoints: [ok] }), argument: 'options.timeoutMs', says: ['got number NaN'] },
      // setTimeout fires at once past 2^31-1 ms: a "forever" timeout would time out immediately.
      { call: () => untypedConnect({ timeoutMs: 2 ** 31, endpoints: [ok] }), argument: 'options.timeoutMs', says: ['2147483647'] },
      { call: () => untypedConnect({ connectTimeoutMs: -1, endpoints: [ok] }), argument: 'options.connectTimeoutMs', says: ['got number -1'] },
      { call: () => untypedConnect({ window: 0, endpoints: [ok] }), argument: 'options.window', says: ['got number 0'] },
      { call: () => untypedConnect({ cluster: 5 }), argument: 'options.cluster', says: ['path', 'got number 5'] },
      { call: () => untypedConnect({ cluster: '' }), argument: 'options.cluster', says: ['got string ""'] },
      { call: () => untypedConnect({ endpoints: ok }), argument: 'options.endpoints', says: ['array', `got string "${ok}"`] },
      { call: () => untypedConnect({ endpoints: [] }), argument: 'options.endpoints', says: ['non-empty'] },
      { call: () => untypedConnect({ endpoints: [7401] }), argument: 'options.endpoints[0]', says: ['host:port', 'got number 7401'] },
      { call: () => untypedConnect({ endpoints: [ok, '127.0.0.1:99999'] }), argument: 'options.endpoints[1]', says: ['"127.0.0.1:99999"', '1 to 65535'] },
      { call: () => untypedConnect({ endpoints: ['localhost'] }), argument: 'options.endpoints[0]', says: ['no port'] },
      { call: () => untypedConnect({ cluster: 'c.json', endpoints: [ok] }), argument: 'options', says: ['cluster or endpoints, not both'] },
    ]);
  });
});

describe('against a 1-node cluster', () => {
  let node: ServerNode | undefined;
  let file = '';
  let db: Db | undefined;
  const live = (): Db => {
    if (db === undefined) throw new Error('not connected');
    return db;
  };

  beforeAll(async () => {
    ({ node, file } = await startSingleNode());
    db = await connect({ cluster: file, timeoutMs: 10_000 });
  });

  afterAll(async () => {
    await db?.close();
    await node?.close();
  });

  it('put/get/delete round-trip text and bytes', async () => {
    const d = live();
    await d.put('greeting', 'hello, wörld');
    expect(text(await d.get('greeting'))).toBe('hello, wörld');

    const bytes = new Uint8Array([0, 255, 1, 128, 0, 10]);
    await d.put('bytes', bytes);
    const back = await d.get('bytes');
    expect(back).toBeInstanceOf(Uint8Array);
    expect(back === undefined ? undefined : [...back]).toEqual([...bytes]);

    await d.put('greeting', 'replaced');
    expect(text(await d.get('greeting'))).toBe('replaced');

    await d.delete('greeting');
    expect(await d.get('greeting')).toBeUndefined();
    expect(back === undefined ? undefined : [...back]).toEqual([...bytes]); // other keys untouched
    expect(text(await d.get('bytes'))).toBe(new TextDecoder().decode(bytes));
  });

  it('get of a key never written is undefined; deleting it is fine', async () => {
    const d = live();
    expect(await d.get('never-written')).toBeUndefined();
    await d.delete('never-written');
    expect(await d.get('never-written')).toBeUndefined();
  });

  it('an empty value is stored as 0 bytes, not as absence', async () => {
    const d = live();
    await d.put('empty-text', '');
    await d.put('empty-bytes', new Uint8Array(0));
    for (const key of ['empty-text', 'empty-bytes']) {
      const v = await d.get(key);
      expect(v).toBeInstanceOf(Uint8Array);
      expect(v?.byteLength).toBe(0);
    }
  });

  it('keys and values at the limits are accepted', async () => {
    const d = live();
    const key = 'k'.repeat(MAX_KEY_BYTES);
    const value = new Uint8Array(MAX_VALUE_BYTES).fill(7);
    await d.put(key, value);
    const back = await d.get(key);
    expect(back?.byteLength).toBe(MAX_VALUE_BYTES);
    expect(back?.every((b) => b === 7)).toBe(true);
  });

  it('oversized keys and values reject with KvInputError before reaching the server', async () => {
    const d = live();
    const before = await quietLog(node);
    const cases: Array<{ call: () => Promise<unknown>; code: string }> = [
      { call: () => d.put('k'.repeat(2000), 'v'), code: 'KEY_TOO_LARGE' },
      { call: () => d.get('k'.repeat(2000)), code: 'KEY_TOO_LARGE' },
      { call: () => d.delete('k'.repeat(2000)), code: 'KEY_TOO_LARGE' },
      // 600 characters but 1200 UTF-8 bytes: the limit counts bytes
      { call: () => d.put('é'.repeat(600), 'v'), code: 'KEY_TOO_LARGE' },
      { call: () => d.put('big', new Uint8Array(MAX_VALUE_BYTES + 1)), code: 'VALUE_TOO_LARGE' },
      { call: () => d.put('big', 'x'.repeat(MAX_VALUE_BYTES + 1)), code: 'VALUE_TOO_LARGE' },
      { call: () => d.put('', 'v'), code: 'EMPTY_KEY' },
    ];
    for (const c of cases) {
      const started = performance.now();
      const err = await rejection(c.call());
      expect(err).toBeInstanceOf(KvInputError);
      if (err instanceof KvInputError) expect(err.code).toBe(c.code);
      expect(performance.now() - started).toBeLessThan(200); // no round trip
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(node === undefined ? undefined : kv(node).decidedBelow).toBe(before); // nothing was proposed
    expect(await d.get('big')).toBeUndefined();
  });

  it('arguments of the wrong type from plain JavaScript reject with InvalidArgumentError before the wire, never coerced', async () => {
    const d = live() as unknown as UntypedDb;
    const before = await quietLog(node);
    await expectRefused([
      { call: () => d.put(undefined, 'v'), argument: 'key', says: ['put:', 'a string', 'got undefined'] },
      { call: () => d.put('k', 123), argument: 'value', says: ['put:', 'a string or a Uint8Array', 'got number 123'] },
      { call: () => d.put(123, 'v'), argument: 'key', says: ['got number 123'] },
      { call: () => d.put('k'), argument: 'value', says: ['got undefined'] },
      { call: () => d.put('k', null), argument: 'value', says: ['got null'] },
      { call: () => d.put('k', { text: 'v' }), argument: 'value', says: ['got an object'] },
      { call: () => d.put('k', [1, 2]), argument: 'value', says: ['got an array'] },
      { call: () => d.put('k', new Uint16Array(2)), argument: 'value', says: ['got a Uint16Array'] },
      { call: () => d.put('k', Promise.resolve('v')), argument: 'value', says: ['got a Promise', 'await'] },
      { call: () => d.put('k', 'ok\ud800'), argument: 'value', says: ['lone surrogate'] },
      { call: () => d.put(Symbol('k'), 'v'), argument: 'key', says: ['got symbol Symbol(k)'] },
      { call: () => d.get(undefined), argument: 'key', says: ['get:', 'got undefined'] },
      { call: () => d.get(), argument: 'key', says: ['get:', 'got undefined'] },
      { call: () => d.get(42n), argument: 'key', says: ['got bigint 42'] },
      { call: () => d.get(true), argument: 'key', says: ['got boolean true'] },
      { call: () => d.delete(new Uint8Array([1])), argument: 'key', says: ['delete:', 'got a Uint8Array'] },
      { call: () => d.delete(['a']), argument: 'key', says: ['delete:', 'got an array'] },
    ]);
    await new Promise((r) => setTimeout(r, 100));
    expect(node === undefined ? undefined : kv(node).decidedBelow).toBe(before); // nothing was proposed
    expect(await live().get('123')).toBeUndefined(); // put(123, …) did not store the key "123"
    expect(await live().get('k')).toBeUndefined();
    await live().put('k', 'ok\u{1F600}'); // a surrogate pair is one code point: fine
    expect(text(await live().get('k'))).toBe('ok\u{1F600}');
  });

  it('a Node Buffer is a Uint8Array, so it is a value', async () => {
    await live().put('buffer', Buffer.from([0xff, 0x00, 0x41]));
    const back = await live().get('buffer');
    expect(back === undefined ? undefined : [...back]).toEqual([0xff, 0x00, 0x41]);
  });

  it('200 concurrent puts, then 200 concurrent gets, all correct', async () => {
    const d = live();
    const keys = Array.from({ length: 200 }, (_, i) => `c${i}`);
    await Promise.all(keys.map((k, i) => d.put(k, `value-${i}-${'x'.repeat(i)}`)));
    const values = await Promise.all(keys.map((k) => d.get(k)));
    expect(values.map(text)).toEqual(keys.map((_, i) => `value-${i}-${'x'.repeat(i)}`));
  });

  it('after close() every call rejects with ClientClosedError; in-flight writes may have taken effect', async () => {
    const other = await connect({ cluster: file, timeoutMs: 10_000 });
    await other.put('before-close', 'x');
    const inFlight = rejection(other.put('during-close', 'y'));
    await other.close();
    const during = await inFlight;
    expect(during).toBeInstanceOf(ClientClosedError);
    if (during instanceof ClientClosedError) expect(during.mayHaveTakenEffect).toBe(true);

    for (const call of [() => other.put('after', 'z'), () => other.get('before-close'), () => other.delete('before-close')]) {
      const err = await rejection(call());
      expect(err).toBeInstanceOf(ClientClosedError);
      if (err instanceof ClientClosedError) {
        expect(err.mayHaveTakenEffect).toBe(false);
        expect(err.code).toBe('CLIENT_CLOSED');
      }
    }
    await other.close(); // closing twice is harmless
    expect(text(await live().get('before-close'))).toBe('x'); // the cluster and other clients are unaffected
  });
});

describe('operation timeouts', () => {
  it('a put to a cluster that went away may have taken effect; a get certainly did not', async () => {
    const { node, file } = await startSingleNode();
    let nodeOpen = true;
    const db = await connect({ cluster: file, timeoutMs: 300 });
    try {
      await db.put('k', 'v');
      expect(text(await db.get('k'))).toBe('v');
      await node.close();
      nodeOpen = false;

      const started = performance.now();
      const [put, del, get] = await Promise.all([rejection(db.put('k', 'w')), rejection(db.delete('k')), rejection(db.get('k'))]);
      const ms = performance.now() - started;
      expect(ms).toBeGreaterThanOrEqual(250);
      expect(ms).toBeLessThan(2_000);

      for (const [err, writes, kind] of [
        [put, true, 'put'],
        [del, true, 'delete'],
        [get, false, 'get'],
      ] as const) {
        expect(err).toBeInstanceOf(OperationTimeoutError);
        if (err instanceof OperationTimeoutError) {
          expect(err.code).toBe('TIMEOUT');
          expect(err.mayHaveTakenEffect).toBe(writes);
          // The message says it too, for whoever reads only the message (a log, the CLI).
          expect(err.message).toContain(`${kind} "k" timed out`);
          expect(err.message).toContain('300 ms');
          if (writes) expect(err.message).toContain('may still take effect');
          else expect(err.message).not.toContain('may');
        }
      }
    } finally {
      await db.close();
      if (nodeOpen) await node.close();
    }
  });
});

describe('cluster identity', () => {
  const expectWrongCluster = (err: unknown, address: string, mayHaveTakenEffect: boolean) => {
    expect(err).toBeInstanceOf(WrongClusterError);
    if (!(err instanceof WrongClusterError)) return;
    expect(err.message).toBe(
      `${address}: this node belongs to cluster c1, the cluster file says c2: ` +
        'the file points at a node of another cluster (check its addresses, or use the right cluster file)',
    );
    expect(err.code).toBe('WRONG_CLUSTER');
    expect(err.nodeClusterId).toBe('c1');
    expect(err.mayHaveTakenEffect).toBe(mayHaveTakenEffect);
  };

  it("connect() to another cluster's node rejects with WrongClusterError; status names the cluster", async () => {
    const { node, file, address } = await startSingleNode('c1');
    try {
      expectWrongCluster(await rejection(connect({ cluster: clusterFile('c2', address) })), address, false);
      expectWrongCluster(await rejection(connect({ endpoints: [address], clusterId: 'c2' })), address, false);
      expectWrongCluster(await rejection(fetchStatus(address, 2_000, 'c2')), address, false);
      expect((await fetchStatus(address, 2_000, 'c1')).clusterId).toBe('c1');
      expect((await fetchStatus(address, 2_000)).clusterId).toBe('c1'); // an operator's probe names no cluster

      // Endpoints alone: the cluster the servers name, then checked on every call.
      const db = await connect({ endpoints: [address] });
      await db.put('k', 'v');
      await db.close();
      await expect(connect({ cluster: file, clusterId: 'c2' })).rejects.toThrow(/clusterId c2 was given, but the cluster file/);
    } finally {
      await node.close();
    }
  });

  it("a client whose server is replaced by another cluster's node stops with WrongClusterError", async () => {
    const first = await startSingleNode('c1');
    const db = await connect({ endpoints: [first.address], timeoutMs: 5_000 });
    let second: ServerNode | undefined;
    try {
      await db.put('k', 'v');
      await first.node.close();
      // Another cluster's node takes the address; c2's cluster file gives the refusal's wording.
      second = (await startSingleNode('c2', first.address)).node;
      const before = await quietLog(second); // its own join and config install
      const put = await rejection(db.put('k', 'w'));
      expect(put).toBeInstanceOf(WrongClusterError);
      if (put instanceof WrongClusterError) {
        expect(put.message).toContain('this node belongs to cluster c2, the cluster file says c1');
        expect(put.mayHaveTakenEffect).toBe(true); // an earlier copy may have reached a node of c1
      }
      const get = await rejection(db.get('k'));
      expect(get).toBeInstanceOf(WrongClusterError);
      if (get instanceof WrongClusterError) expect(get.mayHaveTakenEffect).toBe(false);
      expect(await quietLog(second)).toBe(before); // c2's node applied nothing of c1's client
    } finally {
      await db.close();
      await second?.close();
    }
  });
});
