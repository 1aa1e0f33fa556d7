// The cluster file: a valid one loads (relative data folders resolve against
// the file's folder); every malformed one is a ClusterConfigError that names
// what is wrong.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterConfigError, findNode, loadClusterConfig, parseClusterConfig } from '../src/runtime/cluster-config.js';

const dir = mkdtempSync(join(tmpdir(), 'shardpax-config-'));

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function node(id: string, port: number, dataDir: string = id): { id: string; address: string; dataDir: string } {
  return { id, address: `127.0.0.1:${port}`, dataDir };
}

/** The ClusterConfigError `f` throws (the test fails if it throws nothing or something else). */
function configError(f: () => unknown): ClusterConfigError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ClusterConfigError);
    if (err instanceof ClusterConfigError) return err;
  }
  throw new Error('expected a ClusterConfigError, but nothing was thrown');
}

describe('loadClusterConfig', () => {
  it('loads a valid file, resolving relative data folders against its folder', () => {
    const abs = join(dir, 'elsewhere', 'n3');
    const path = writeFile(
      'valid.json',
      JSON.stringify({
        version: 1,
        clusterId: 'c1',
        groups: [
          { id: 1, nodes: [node('n1', 7401), node('n2', 7402, 'data/n2')] },
          { id: 2, nodes: [{ id: 'n3', address: '[::1]:7403', dataDir: abs }] },
        ],
      }),
    );
    const config = loadClusterConfig(path);
    expect(config.path).toBe(path);
    expect(config.clusterId).toBe('c1');
    expect(config.groups.map((g) => g.id)).toEqual([1, 2]);
    expect(config.nodes).toEqual([
      { id: 'n1', address: '127.0.0.1:7401', dataDir: join(dir, 'n1') },
      { id: 'n2', address: '127.0.0.1:7402', dataDir: join(dir, 'data', 'n2') },
      { id: 'n3', address: '[::1]:7403', dataDir: abs },
    ]);
    expect(config.groups).toEqual([
      { id: 1, nodes: ['n1', 'n2'] },
      { id: 2, nodes: ['n3'] },
    ]);
    expect(findNode(config, 'n3').address).toBe('[::1]:7403');
  });

  it('a missing file says how to create one', () => {
    const missing = join(dir, 'no-such', 'cluster.json');
    const err = configError(() => loadClusterConfig(missing));
    expect(err.message).toContain(missing);
    expect(err.message).toContain('npm start');
    expect(err.message).toContain('--cluster');
  });

  it('a file that is not JSON', () => {
    const path = writeFile('broken.json', '{ "version": 1, groups: [');
    const err = configError(() => loadClusterConfig(path));
    expect(err.message).toContain(path);
    expect(err.message).toContain('not JSON');
  });
});

describe('parseClusterConfig refuses malformed files', () => {
  const P = '/etc/shardpax/cluster.json';
  const cases: Array<{ name: string; json: unknown; says: readonly string[] }> = [
    { name: 'not an object', json: [1, 2], says: ['top level', 'object'] },
    { name: 'version 2', json: { version: 2, groups: [{ id: 1, nodes: [node('n1', 1)] }] }, says: ['version must be 1', '2'] },
    { name: 'no version', json: { groups: [{ id: 1, nodes: [node('n1', 1)] }] }, says: ['version must be 1'] },
    { name: 'no cluster id', json: { version: 1, groups: [{ id: 1, nodes: [node('n1', 1)] }] }, says: ['clusterId must be'] },
    { name: 'bad cluster id', json: { version: 1, clusterId: 'a b', groups: [{ id: 1, nodes: [node('n1', 1)] }] }, says: ['clusterId must be', '"a b"'] },
    { name: 'empty groups', json: { version: 1, clusterId: 'c1', groups: [] }, says: ['groups must be a non-empty array'] },
    { name: 'groups missing', json: { version: 1, clusterId: 'c1' }, says: ['groups must be a non-empty array'] },
    { name: 'negative group id', json: { version: 1, clusterId: 'c1', groups: [{ id: -1, nodes: [node('n1', 1)] }] }, says: ['groups[0].id'] },
    { name: 'empty node list', json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [] }] }, says: ['groups[0].nodes must be a non-empty array'] },
    {
      name: 'bad node id',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [node('n1', 1), node('bad id!', 2, 'x')] }] },
      says: ['groups[0].nodes[1].id'],
    },
    { name: 'empty node id', json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [node('', 1, 'x')] }] }, says: ['groups[0].nodes[0].id'] },
    {
      name: 'duplicate node id (across groups)',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [node('n1', 1)] }, { id: 2, nodes: [node('n1', 2, 'other')] }] },
      says: ['n1', 'appears twice'],
    },
    {
      name: 'address without a port',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [{ id: 'n1', address: 'localhost', dataDir: 'n1' }] }] },
      says: ['groups[0].nodes[0].address', 'host:port', '"localhost"'],
    },
    {
      name: 'address missing',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [{ id: 'n1', dataDir: 'n1' }] }] },
      says: ['groups[0].nodes[0].address', 'host:port'],
    },
    {
      name: 'dataDir missing',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [{ id: 'n1', address: '127.0.0.1:7401' }] }] },
      says: ['groups[0].nodes[0].dataDir'],
    },
    {
      name: 'dataDir empty',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [{ id: 'n1', address: '127.0.0.1:7401', dataDir: '' }] }] },
      says: ['groups[0].nodes[0].dataDir'],
    },
  ];

  // Each mistake an operator can make in a hand-written file; every message names the file and the field.
  const one = (n: Record<string, unknown>) => ({ version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [n] }] });
  const two = (a: Record<string, unknown>, b: Record<string, unknown>) => ({ version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [a, b] }] });
  cases.push(
    { name: 'port 99999', json: one(node('n1', 99999)), says: ['groups[0].nodes[0].address', 'port', '1 to 65535', '99999'] },
    { name: 'port 0', json: one(node('n1', 0)), says: ['groups[0].nodes[0].address', 'port', '1 to 65535'] },
    { name: 'port with a leading zero', json: one({ id: 'n1', address: '127.0.0.1:07401', dataDir: 'n1' }), says: ['groups[0].nodes[0].address', '07401'] },
    { name: 'hostname with an underscore', json: one({ id: 'n1', address: 'db_1:7401', dataDir: 'n1' }), says: ['groups[0].nodes[0].address', 'host', '"db_1"'] },
    { name: 'hostname label starting with -', json: one({ id: 'n1', address: '-db.local:7401', dataDir: 'n1' }), says: ['groups[0].nodes[0].address', '"-db.local"'] },
    { name: 'hostname with an empty label', json: one({ id: 'n1', address: 'a..b:7401', dataDir: 'n1' }), says: ['groups[0].nodes[0].address', '"a..b"'] },
    { name: 'IPv4 out of range', json: one({ id: 'n1', address: '256.1.1.1:7401', dataDir: 'n1' }), says: ['groups[0].nodes[0].address', '"256.1.1.1"'] },
    { name: 'IPv6 that does not parse', json: one({ id: 'n1', address: '[::zz]:7401', dataDir: 'n1' }), says: ['groups[0].nodes[0].address', '"::zz"'] },
    { name: 'address not a string', json: one({ id: 'n1', address: 7401, dataDir: 'n1' }), says: ['groups[0].nodes[0].address', 'found 7401'] },
    {
      name: 'two nodes on one address',
      json: two(node('n1', 7401, 'a'), node('n2', 7401, 'b')),
      says: ['groups[0].nodes[1].address', 'groups[0].nodes[0].address', '127.0.0.1:7401'],
    },
    {
      name: 'one address across groups, spelled in another case',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [{ id: 'n1', address: 'DB.local:1', dataDir: 'a' }] }, { id: 2, nodes: [{ id: 'n2', address: 'db.local:1', dataDir: 'b' }] }] },
      says: ['groups[1].nodes[0].address', 'groups[0].nodes[0].address'],
    },
    {
      name: 'two nodes on one data folder (spelled differently)',
      json: two(node('n1', 1, 'data/n1'), node('n2', 2, './data//n1/')),
      says: ['groups[0].nodes[1].dataDir', 'groups[0].nodes[0].dataDir', '/etc/shardpax/data/n1'],
    },
    {
      name: 'a data folder inside another node\'s',
      json: two(node('n1', 1, 'data'), node('n2', 2, 'data/n2')),
      says: ['groups[0].nodes[1].dataDir', 'inside', 'groups[0].nodes[0].dataDir'],
    },
    {
      name: 'two groups with one id',
      json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [node('n1', 1)] }, { id: 1, nodes: [node('n2', 2)] }] },
      says: ['groups[1].id', 'groups[0].id', '1'],
    },
    { name: 'group id not a number', json: { version: 1, clusterId: 'c1', groups: [{ id: '1', nodes: [node('n1', 1)] }] }, says: ['groups[0].id', '"1"'] },
    { name: 'unknown top-level field (a typo)', json: { ...one(node('n1', 1)), clusterID: 'x' }, says: ['unknown field', '"clusterID"', 'version, clusterId, groups'] },
    { name: 'unknown group field', json: { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [node('n1', 1)], replicas: 3 }] }, says: ['groups[0]', 'unknown field', '"replicas"'] },
    { name: 'unknown node field (a typo)', json: one({ ...node('n1', 1), datadir: 'x' }), says: ['groups[0].nodes[0]', 'unknown field', '"datadir"'] },
    { name: 'cluster id not a string', json: { ...one(node('n1', 1)), clusterId: 42 }, says: ['clusterId must be', '42'] },
    { name: 'cluster id too long', json: { ...one(node('n1', 1)), clusterId: 'c'.repeat(65) }, says: ['clusterId must be', 'c'.repeat(65)] },
    { name: 'node id not a string', json: one({ id: 1, address: '127.0.0.1:1', dataDir: 'n1' }), says: ['groups[0].nodes[0].id', 'found 1'] },
    { name: 'dataDir not a string', json: one({ id: 'n1', address: '127.0.0.1:1', dataDir: ['a'] }), says: ['groups[0].nodes[0].dataDir', '["a"]'] },
  );

  it('accepts every address form a server can listen on', () => {
    const addresses = ['localhost:1', '127.0.0.1:65535', 'db-1.example.com:7401', 'DB1:7401', '[::1]:7401', '[fe80::1:2]:80', '0.0.0.0:7401'];
    const config = parseClusterConfig(
      { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: addresses.map((address, i) => ({ id: `n${i}`, address, dataDir: `d${i}` })) }] },
      P,
    );
    expect(config.nodes.map((n) => n.address)).toEqual(addresses);
  });

  for (const c of cases) {
    it(c.name, () => {
      const err = configError(() => parseClusterConfig(c.json, P));
      expect(err.name).toBe('ClusterConfigError');
      expect(err.message.startsWith(`${P}: `)).toBe(true);
      for (const s of c.says) expect(err.message).toContain(s);
    });
  }

  it('loadClusterConfig reports the same problems for a file', () => {
    const path = writeFile('no-port.json', JSON.stringify({ version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [{ id: 'n1', address: 'localhost', dataDir: 'n1' }] }] }));
    const err = configError(() => loadClusterConfig(path));
    expect(err.message).toContain(path);
    expect(err.message).toContain('"localhost"');
  });
});

describe('findNode', () => {
  it('an unknown id lists the known ones', () => {
    const config = parseClusterConfig(
      { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [node('n1', 1), node('n2', 2)] }, { id: 2, nodes: [node('m1', 3)] }] },
      '/x/cluster.json',
    );
    expect(findNode(config, 'n2').id).toBe('n2');
    const err = configError(() => findNode(config, 'n9'));
    expect(err.message).toContain('"n9"');
    expect(err.message).toContain('n1, n2, m1');
  });
});
