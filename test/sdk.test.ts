// The SDK through its public entry (`import ... from 'shardpax'`, the
// package's self-reference): connecting to nothing, a round trip against a
// real single-node cluster in this process, input limits checked before the
// wire, pipelining, close, timeouts that say whether a write may have
// been applied, and the cluster id every call names.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ClientClosedError,
  ClusterUnreachableError,
  connect,
  type Db,
  KvInputError,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  OperationTimeoutError,
  ShardpaxError,
  WrongClusterError,
} from 'shardpax';
import { freePort } from '../src/cli/local-cluster.js';
import { fetchStatus } from '../src/client/admin.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNode, loadClusterConfig } from '../src/runtime/cluster-config.js';
import { initNodeStorage } from '../src/server/node-storage.js';
import { type ServerNode, startServerNode } from '../src/server/server-node.js';

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

/** A cluster file of cluster `clusterId` with one node at `address`, in a new folder. */
function clusterFile(clusterId: string, address: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'shardpax-sdk-'));
  dirs.push(dir);
  const file = join(dir, 'cluster.json');
  writeFileSync(file, JSON.stringify({ version: 1, clusterId, groups: [{ id: 1, nodes: [{ id: 'n1', address, dataDir: 'n1' }] }] }));
  return file;
}

/** A 1-node cluster served from this process, its leader elected. */
async function startSingleNode(
  clusterId = 'c1',
  at?: string,
): Promise<{ node: ServerNode; file: string; address: string }> {
  const address = at ?? `127.0.0.1:${await freePort()}`;
  const file = clusterFile(clusterId, address);
  const cluster = loadClusterConfig(file);
  await initNodeStorage(cluster, findNode(cluster, 'n1').node);
  const node = await startServerNode(cluster, 'n1');
  const deadline = Date.now() + 5_000;
  while (!node.status().leader) {
    if (Date.now() > deadline) {
      await node.close();
      throw new Error('the single node did not elect itself within 5 s');
    }
    await new Promise((r) => setTimeout(r, 20));
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
    const before = node?.status().decidedBelow;
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
    expect(node?.status().decidedBelow).toBe(before); // nothing was proposed
    expect(await d.get('big')).toBeUndefined();
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

      for (const [err, writes] of [
        [put, true],
        [del, true],
        [get, false],
      ] as const) {
        expect(err).toBeInstanceOf(OperationTimeoutError);
        if (err instanceof OperationTimeoutError) {
          expect(err.code).toBe('TIMEOUT');
          expect(err.mayHaveTakenEffect).toBe(writes);
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
      const put = await rejection(db.put('k', 'w'));
      expect(put).toBeInstanceOf(WrongClusterError);
      if (put instanceof WrongClusterError) {
        expect(put.message).toContain('this node belongs to cluster c2, the cluster file says c1');
        expect(put.mayHaveTakenEffect).toBe(true); // an earlier copy may have reached a node of c1
      }
      const get = await rejection(db.get('k'));
      expect(get).toBeInstanceOf(WrongClusterError);
      if (get instanceof WrongClusterError) expect(get.mayHaveTakenEffect).toBe(false);
      expect(second.status().decidedBelow).toBe(0); // c2's node applied nothing of c1's client
    } finally {
      await db.close();
      await second?.close();
    }
  });
});
