// A node's storage and its identity record (issue 7), in process: `init`
// creates a store with the record; a node opens only storage that is there
// and is its own, and otherwise gets a StorageRefusedError saying what
// happened and what to do; `--rebuild` moves the old folder aside and makes
// a fresh store marked rebuilding, which stays marked across restarts.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { put } from '../src/core/storage.js';
import { type ClusterConfig, findNode, parseClusterConfig } from '../src/runtime/cluster-config.js';
import { LevelStorage } from '../src/server/level-storage.js';
import { decodeIdentity, encodeIdentity, newIdentity, StorageRefusedError } from '../src/server/node-identity.js';
import { checkNodeStorage, initNodeStorage, openNodeStorage, rebuildNodeStorage } from '../src/server/node-storage.js';
import { clusterJson } from './support/cluster-file.js';

const root = mkdtempSync(join(tmpdir(), 'shardpax-node-storage-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let nextDir = 0;
/** A cluster file (never written) of cluster `clusterId` whose nodes n1, n2 keep their data in a new folder. */
function cluster(clusterId = 'c1', dir = join(root, `case-${nextDir++}`)): ClusterConfig {
  const nodes = ['n1', 'n2'].map((id, i) => ({ id, address: `127.0.0.1:${7401 + i}`, dataDir: id }));
  return parseClusterConfig(clusterJson(clusterId, nodes), join(dir, 'cluster.json'));
}

const n1 = (c: ClusterConfig) => findNode(c, 'n1');

/** The StorageRefusedError `p` rejects with. */
async function refusal(p: Promise<unknown>): Promise<StorageRefusedError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof StorageRefusedError)) throw new Error(`expected a StorageRefusedError, got ${String(err)}`);
  return err;
}

describe('init, then open', () => {
  it('init writes the identity record; open returns it', async () => {
    const c = cluster();
    const made = await initNodeStorage(c, n1(c));
    expect(made).toMatchObject({ format: 3, clusterId: 'c1', nodeId: 'n1', rebuilding: false });
    const { storage, identity } = await openNodeStorage(c, n1(c), ['state']);
    await storage.close();
    expect(identity).toEqual(made);
  });

  it('init refuses a folder that holds anything', async () => {
    const c = cluster();
    mkdirSync(n1(c).dataDir, { recursive: true });
    writeFileSync(join(n1(c).dataDir, 'notes.txt'), 'mine');
    const err = await refusal(initNodeStorage(c, n1(c)));
    expect(err.problem.kind).toBe('not-empty');
    expect(err.message).toContain(`node n1: data folder ${n1(c).dataDir} already holds files`);
    expect(readdirSync(n1(c).dataDir)).toEqual(['notes.txt']);
  });
});

describe('a node refuses storage that is not its own', () => {
  const newOrLost = (c: ClusterConfig) => [
    `shardpax init --cluster ${c.path} --node n1`,
    `shardpax server --cluster ${c.path} --node n1 --rebuild`,
  ];

  it('a missing folder', async () => {
    const c = cluster();
    const err = await refusal(openNodeStorage(c, n1(c), []));
    expect(err.problem.kind).toBe('missing');
    expect(err.message).toContain(`node n1: data folder ${n1(c).dataDir} does not exist`);
    for (const hint of newOrLost(c)) expect(err.message).toContain(hint);
    expect(existsSync(n1(c).dataDir)).toBe(false); // nothing made on the way
  });

  it('an empty folder', async () => {
    const c = cluster();
    mkdirSync(n1(c).dataDir, { recursive: true });
    const err = await refusal(openNodeStorage(c, n1(c), []));
    expect(err.problem.kind).toBe('empty-folder');
    expect(err.message).toContain('is empty');
    for (const hint of newOrLost(c)) expect(err.message).toContain(hint);
  });

  it('an empty store (LevelDB, but no identity record)', async () => {
    const c = cluster();
    mkdirSync(join(n1(c).dataDir, '..'), { recursive: true });
    await (await LevelStorage.create(n1(c).dataDir, [])).close();
    const err = await refusal(openNodeStorage(c, n1(c), []));
    expect(err.problem.kind).toBe('no-identity');
    expect(err.message).toContain('holds a LevelDB store without an identity record');
    expect(err.message).toContain(`shardpax server --cluster ${c.path} --node n1 --rebuild`);
  });

  it('a store whose CURRENT file was deleted', async () => {
    const c = cluster();
    await initNodeStorage(c, n1(c));
    rmSync(join(n1(c).dataDir, 'CURRENT'));
    const err = await refusal(openNodeStorage(c, n1(c), []));
    expect(err.problem.kind).toBe('unopenable');
    expect(err.message).toContain('holds no LevelDB store that opens (a file such as CURRENT is missing');
    expect(err.message).toContain(`shardpax server --cluster ${c.path} --node n1 --rebuild`);
  });

  it("another cluster's storage", async () => {
    const other = cluster('c2');
    await initNodeStorage(other, n1(other));
    const c = cluster('c1', join(other.path, '..')); // same folders, another cluster id
    const err = await refusal(openNodeStorage(c, n1(c), []));
    expect(err.problem).toEqual({ kind: 'foreign-cluster', found: 'c2' });
    expect(err.message).toContain(`belongs to cluster c2, but ${c.path} is cluster c1`);
  });

  it("another node's storage", async () => {
    const c = cluster();
    const n2 = findNode(c, 'n2');
    await initNodeStorage(c, n2);
    const nodes = [{ id: 'n1', address: '127.0.0.1:7401', dataDir: n2.dataDir }]; // n1 pointed at n2's folder
    const swapped = parseClusterConfig(clusterJson('c1', nodes), c.path);
    const err = await refusal(openNodeStorage(swapped, n1(swapped), []));
    expect(err.problem).toEqual({ kind: 'foreign-node', found: 'n2' });
    expect(err.message).toContain("holds node n2's storage, not n1's");
  });

  it('a damaged identity record', async () => {
    const c = cluster();
    await initNodeStorage(c, n1(c));
    const s = await LevelStorage.open(n1(c).dataDir, []);
    await s.writeIdentity(new TextEncoder().encode('{"format":1,"clusterId":"c1"'));
    await s.close();
    const err = await refusal(openNodeStorage(c, n1(c), []));
    expect(err.problem.kind).toBe('bad-identity');
    expect(err.message).toContain('has a damaged identity record (not UTF-8 JSON');
  });

  it('a store another instance holds', async () => {
    const c = cluster();
    await initNodeStorage(c, n1(c));
    const held = await openNodeStorage(c, n1(c), []);
    try {
      const err = await refusal(checkNodeStorage(c, n1(c)));
      expect(err.problem.kind).toBe('locked');
      expect(err.message).toContain('is in use by another process (is n1 already running?)');
    } finally {
      await held.storage.close();
    }
  });
});

describe('rebuild', () => {
  it('moves the old folder aside and makes a fresh store marked rebuilding, which stays marked', async () => {
    const c = cluster();
    await initNodeStorage(c, n1(c));
    const old = await openNodeStorage(c, n1(c), ['state']);
    await old.storage.write([put('state', 'k', new Uint8Array([1]))], { sync: true });
    await old.storage.close();

    const rebuilt = await rebuildNodeStorage(c, n1(c), ['state']);
    try {
      expect(rebuilt.identity).toMatchObject({ clusterId: 'c1', nodeId: 'n1', rebuilding: true });
      expect(await rebuilt.storage.loadSpaces(['state'])).toEqual(new Map());
    } finally {
      await rebuilt.storage.close();
    }
    expect(rebuilt.movedTo).toMatch(/n1\.before-rebuild-/);
    const aside = await LevelStorage.open(rebuilt.movedTo ?? '', ['state']);
    try {
      const kept = await aside.loadSpaces(['state']); // the old data is kept, not deleted
      expect(kept.get('state')?.get('k')).toEqual(new Uint8Array([1]));
    } finally {
      await aside.close();
    }
    expect((await checkNodeStorage(c, n1(c))).rebuilding).toBe(true); // a restart is still a rebuild
  });

  it('makes a store in a missing folder, and moves aside a damaged one', async () => {
    const c = cluster();
    const fresh = await rebuildNodeStorage(c, n1(c), []);
    await fresh.storage.close();
    expect(fresh.movedTo).toBeUndefined();
    rmSync(join(n1(c).dataDir, 'CURRENT'));
    const again = await rebuildNodeStorage(c, n1(c), []);
    await again.storage.close();
    expect(again.movedTo).toBeDefined();
    expect((await checkNodeStorage(c, n1(c))).rebuilding).toBe(true);
  });

  it('refuses a store another instance holds, and a folder without LevelDB files', async () => {
    const c = cluster();
    await initNodeStorage(c, n1(c));
    const held = await openNodeStorage(c, n1(c), []);
    try {
      expect((await refusal(rebuildNodeStorage(c, n1(c), []))).problem.kind).toBe('locked');
    } finally {
      await held.storage.close();
    }
    const other = cluster();
    mkdirSync(n1(other).dataDir, { recursive: true });
    writeFileSync(join(n1(other).dataDir, 'thesis.tex'), 'precious');
    const err = await refusal(rebuildNodeStorage(other, n1(other), []));
    expect(err.problem.kind).toBe('not-storage');
    expect(readdirSync(n1(other).dataDir)).toEqual(['thesis.tex']);
  });
});

describe('identity record codec', () => {
  const good = newIdentity('c1', n1(cluster()).id, false);
  const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

  it('round-trips', () => {
    expect(decodeIdentity(encodeIdentity(good))).toEqual(good);
  });

  it.each([
    ['bytes that are not UTF-8', new Uint8Array([0xff, 0xfe]), 'not UTF-8 JSON'],
    ['an array', enc([good]), 'not a JSON object'],
    ['a missing field', enc({ ...good, rebuilding: undefined }), 'fields are'],
    ['an extra field', enc({ ...good, extra: 1 }), 'fields are'],
    ['a newer format', enc({ ...good, format: 4 }), 'storage format 4'],
    ['the format of one group per node', enc({ ...good, format: 1 }), 'storage format 1, of a shardpax that kept one group per node'],
    ['the format of unsharded KV data', enc({ ...good, format: 2 }), 'storage format 2, of a shardpax that kept KV data and sessions unsharded'],
    ['a bad cluster id', enc({ ...good, clusterId: 'a b' }), 'bad clusterId'],
    ['an empty node id', enc({ ...good, nodeId: '' }), 'bad nodeId'],
    ['a bad date', enc({ ...good, createdAt: 'yesterday' }), 'bad createdAt'],
    ['a non-boolean mark', enc({ ...good, rebuilding: 'no' }), 'bad rebuilding'],
  ])('rejects %s', (_name, bytes, says) => {
    const got = decodeIdentity(bytes);
    expect(typeof got).toBe('string');
    expect(got).toContain(says);
  });
});
