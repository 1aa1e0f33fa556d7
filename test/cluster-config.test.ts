// The cluster file, version 2: a valid one loads (relative data folders
// resolve against the file's folder; groups name declared nodes, a node may
// host any number of groups); every malformed one is a ClusterConfigError
// that names what is wrong; a version 1 file is refused with how to convert it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeId } from '../src/core/ids.js';
import {
  ClusterConfigError,
  defaultKvGroup,
  findNode,
  groupsOf,
  loadClusterConfig,
  MAX_GROUP_ID,
  MAX_NODES_PER_GROUP,
  MAX_SHARDS,
  parseClusterConfig,
} from '../src/runtime/cluster-config.js';
import * as shardmaster from '../src/shardmaster/config.js';

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

/** A valid file of `nodes`, with group 0 and group 1 on all of them; override any field. */
function file(nodes: readonly Record<string, unknown>[], more: Record<string, unknown> = {}): Record<string, unknown> {
  const ids = nodes.map((n) => n.id);
  return { version: 2, clusterId: 'c1', shards: 64, nodes, groups: [{ id: 0, nodes: ids }, { id: 1, nodes: ids }], ...more };
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
  it('loads a valid file: nodes with their data folders resolved, groups in id order naming them', () => {
    const abs = join(dir, 'elsewhere', 'n3');
    const path = writeFile(
      'valid.json',
      JSON.stringify({
        version: 2,
        clusterId: 'c1',
        shards: 16,
        nodes: [node('n1', 7401), node('n2', 7402, 'data/n2'), { id: 'n3', address: '[::1]:7403', dataDir: abs }, node('spare', 7404)],
        groups: [
          { id: 2, nodes: ['n3', 'n1'] },
          { id: 0, nodes: ['n1', 'n2', 'n3'] },
          { id: 1, nodes: ['n1', 'n2'] },
        ],
      }),
    );
    const config = loadClusterConfig(path);
    expect(config.clusterId).toBe('c1');
    expect(config.shards).toBe(16);
    expect(config.nodes).toEqual([
      { id: 'n1', address: '127.0.0.1:7401', dataDir: join(dir, 'n1') },
      { id: 'n2', address: '127.0.0.1:7402', dataDir: join(dir, 'data', 'n2') },
      { id: 'n3', address: '[::1]:7403', dataDir: abs },
      { id: 'spare', address: '127.0.0.1:7404', dataDir: join(dir, 'spare') },
    ]);
    expect(config.groups).toEqual([
      { id: 0, nodes: ['n1', 'n2', 'n3'] },
      { id: 1, nodes: ['n1', 'n2'] },
      { id: 2, nodes: ['n3', 'n1'] },
    ]);
    expect(findNode(config, 'n3').address).toBe('[::1]:7403');
    expect(groupsOf(config, nodeId('n1')).map((g) => g.id)).toEqual([0, 1, 2]);
    expect(groupsOf(config, nodeId('n3')).map((g) => g.id)).toEqual([0, 2]);
    expect(groupsOf(config, nodeId('spare'))).toEqual([]); // a node may host no group yet
    expect(defaultKvGroup(config)).toBe(1);
  });

  it('a missing file says how to create one', () => {
    const missing = join(dir, 'no-such', 'cluster.json');
    const err = configError(() => loadClusterConfig(missing));
    expect(err.message).toContain(missing);
    expect(err.message).toContain('npm start');
    expect(err.message).toContain('--cluster');
  });

  it('a file that is not JSON', () => {
    const path = writeFile('broken.json', '{ "version": 2, groups: [');
    const err = configError(() => loadClusterConfig(path));
    expect(err.message).toContain(path);
    expect(err.message).toContain('not JSON');
  });

  it('a version 1 file is refused with how to convert it', () => {
    const v1 = { version: 1, clusterId: 'c1', groups: [{ id: 1, nodes: [node('n1', 7401)] }] };
    const err = configError(() => loadClusterConfig(writeFile('v1.json', JSON.stringify(v1))));
    for (const s of ['version 1 is no longer read', 'Convert the file to version 2', '"shards": 64', '"nodes"', '"id": 0', 'shard master']) {
      expect(err.message).toContain(s);
    }
    expect(err.message).toContain('remove its folder and run `shardpax dev` again');
  });

  it("the limits are the shard master's", () => {
    expect(MAX_SHARDS).toBe(shardmaster.MAX_SHARDS);
    expect(MAX_GROUP_ID).toBe(shardmaster.MAX_GROUP_ID);
    expect(MAX_NODES_PER_GROUP).toBe(shardmaster.MAX_SERVERS_PER_GROUP);
  });
});

describe('parseClusterConfig refuses malformed files', () => {
  const P = '/etc/shardpax/cluster.json';
  const n1 = node('n1', 1);
  const one = (n: Record<string, unknown>) => file([n]);
  const two = (a: Record<string, unknown>, b: Record<string, unknown>) => file([a, b]);
  const groups = (...g: unknown[]) => file([node('n1', 1), node('n2', 2), node('n3', 3)], { groups: g });
  const cases: Array<{ name: string; json: unknown; says: readonly string[] }> = [
    { name: 'not an object', json: [1, 2], says: ['top level', 'object'] },
    { name: 'version 3', json: { ...one(n1), version: 3 }, says: ['version must be 2', '3'] },
    { name: 'no version', json: { ...one(n1), version: undefined }, says: ['version must be 2'] },
    { name: 'no cluster id', json: { ...one(n1), clusterId: undefined }, says: ['clusterId must be'] },
    { name: 'bad cluster id', json: { ...one(n1), clusterId: 'a b' }, says: ['clusterId must be', '"a b"'] },
    { name: 'cluster id not a string', json: { ...one(n1), clusterId: 42 }, says: ['clusterId must be', '42'] },
    { name: 'cluster id too long', json: { ...one(n1), clusterId: 'c'.repeat(65) }, says: ['clusterId must be', 'c'.repeat(65)] },
    { name: 'no shard count', json: { ...one(n1), shards: undefined }, says: ['shards must be a whole number from 1 to 4096', 'nothing'] },
    { name: 'no shards', json: { ...one(n1), shards: 0 }, says: ['shards must be', 'found 0'] },
    { name: 'too many shards', json: { ...one(n1), shards: 4097 }, says: ['shards must be', '4097'] },
    { name: 'a fraction of a shard', json: { ...one(n1), shards: 1.5 }, says: ['shards must be', '1.5'] },
    { name: 'shards as text', json: { ...one(n1), shards: '64' }, says: ['shards must be', '"64"'] },
    { name: 'nodes missing', json: { ...one(n1), nodes: undefined }, says: ['nodes must be a non-empty array'] },
    { name: 'no nodes', json: { ...one(n1), nodes: [] }, says: ['nodes must be a non-empty array'] },
    { name: 'bad node id', json: two(n1, node('bad id!', 2, 'x')), says: ['nodes[1].id', '"bad id!"'] },
    { name: 'empty node id', json: one(node('', 1, 'x')), says: ['nodes[0].id'] },
    { name: 'node id not a string', json: one({ id: 1, address: '127.0.0.1:1', dataDir: 'n1' }), says: ['nodes[0].id', 'found 1'] },
    { name: 'duplicate node id', json: two(n1, node('n1', 2, 'other')), says: ['nodes[1].id', 'n1', 'appears twice', 'nodes[0].id'] },
    { name: 'address without a port', json: one({ id: 'n1', address: 'localhost', dataDir: 'n1' }), says: ['nodes[0].address', 'host:port', '"localhost"'] },
    { name: 'address missing', json: one({ id: 'n1', dataDir: 'n1' }), says: ['nodes[0].address', 'host:port'] },
    { name: 'dataDir missing', json: one({ id: 'n1', address: '127.0.0.1:7401' }), says: ['nodes[0].dataDir'] },
    { name: 'dataDir empty', json: one({ id: 'n1', address: '127.0.0.1:7401', dataDir: '' }), says: ['nodes[0].dataDir'] },
    { name: 'dataDir not a string', json: one({ id: 'n1', address: '127.0.0.1:1', dataDir: ['a'] }), says: ['nodes[0].dataDir', '["a"]'] },
    { name: 'port 99999', json: one(node('n1', 99999)), says: ['nodes[0].address', 'port', '1 to 65535', '99999'] },
    { name: 'port 0', json: one(node('n1', 0)), says: ['nodes[0].address', 'port', '1 to 65535'] },
    { name: 'port with a leading zero', json: one({ id: 'n1', address: '127.0.0.1:07401', dataDir: 'n1' }), says: ['nodes[0].address', '07401'] },
    { name: 'hostname with an underscore', json: one({ id: 'n1', address: 'db_1:7401', dataDir: 'n1' }), says: ['nodes[0].address', 'host', '"db_1"'] },
    { name: 'hostname label starting with -', json: one({ id: 'n1', address: '-db.local:7401', dataDir: 'n1' }), says: ['nodes[0].address', '"-db.local"'] },
    { name: 'hostname with an empty label', json: one({ id: 'n1', address: 'a..b:7401', dataDir: 'n1' }), says: ['nodes[0].address', '"a..b"'] },
    { name: 'IPv4 out of range', json: one({ id: 'n1', address: '256.1.1.1:7401', dataDir: 'n1' }), says: ['nodes[0].address', '"256.1.1.1"'] },
    { name: 'IPv6 that does not parse', json: one({ id: 'n1', address: '[::zz]:7401', dataDir: 'n1' }), says: ['nodes[0].address', '"::zz"'] },
    { name: 'address not a string', json: one({ id: 'n1', address: 7401, dataDir: 'n1' }), says: ['nodes[0].address', 'found 7401'] },
    { name: 'two nodes on one address', json: two(node('n1', 7401, 'a'), node('n2', 7401, 'b')), says: ['nodes[1].address', 'nodes[0].address', '127.0.0.1:7401'] },
    {
      name: 'one address spelled in another case',
      json: two({ id: 'n1', address: 'DB.local:1', dataDir: 'a' }, { id: 'n2', address: 'db.local:1', dataDir: 'b' }),
      says: ['nodes[1].address', 'nodes[0].address'],
    },
    {
      name: 'two nodes on one data folder (spelled differently)',
      json: two(node('n1', 1, 'data/n1'), node('n2', 2, './data//n1/')),
      says: ['nodes[1].dataDir', 'nodes[0].dataDir', '/etc/shardpax/data/n1'],
    },
    { name: "a data folder inside another node's", json: two(node('n1', 1, 'data'), node('n2', 2, 'data/n2')), says: ['nodes[1].dataDir', 'inside', 'nodes[0].dataDir'] },
    { name: 'groups missing', json: { ...one(n1), groups: undefined }, says: ['groups must be a non-empty array'] },
    { name: 'no groups', json: { ...one(n1), groups: [] }, says: ['groups must be a non-empty array'] },
    { name: "no shard master's group", json: groups({ id: 1, nodes: ['n1'] }, { id: 2, nodes: ['n2'] }), says: ['group 0', "shard master's group"] },
    { name: 'negative group id', json: groups({ id: 0, nodes: ['n1'] }, { id: -1, nodes: ['n1'] }), says: ['groups[1].id', 'from 0 to 65535', '-1'] },
    { name: 'group id too large', json: groups({ id: 0, nodes: ['n1'] }, { id: 65_536, nodes: ['n1'] }), says: ['groups[1].id', '65536'] },
    { name: 'group id not a number', json: groups({ id: 0, nodes: ['n1'] }, { id: '1', nodes: ['n1'] }), says: ['groups[1].id', '"1"'] },
    {
      name: 'two groups with one id',
      json: groups({ id: 0, nodes: ['n1'] }, { id: 1, nodes: ['n1'] }, { id: 1, nodes: ['n2'] }),
      says: ['groups[2].id 1 is already the id of groups[1].id'],
    },
    { name: 'a group of no nodes', json: groups({ id: 0, nodes: [] }), says: ['groups[0].nodes must be an array of 1 to 16 node ids'] },
    { name: 'group nodes not an array', json: groups({ id: 0, nodes: 'n1' }), says: ['groups[0].nodes must be', '"n1"'] },
    {
      name: 'a group of too many nodes',
      json: file(Array.from({ length: 17 }, (_, i) => node(`n${i}`, i + 1))),
      says: ['groups[0].nodes must be an array of 1 to 16 node ids'],
    },
    {
      name: 'a group naming a node that is not declared',
      json: groups({ id: 0, nodes: ['n1'] }, { id: 1, nodes: ['n1', 'n2', 'n9'] }),
      says: ['groups[1].nodes[2] must be the id of a node in nodes (n1, n2, n3)', '"n9"'],
    },
    { name: 'a group naming a node by number', json: groups({ id: 0, nodes: [1] }), says: ['groups[0].nodes[0] must be the id of a node', 'found 1'] },
    { name: 'a group naming a node twice', json: groups({ id: 0, nodes: ['n1', 'n2', 'n1'] }), says: ['groups[0].nodes[2]', 'n1 is named twice'] },
    { name: 'unknown top-level field (a typo)', json: { ...one(n1), clusterID: 'x' }, says: ['unknown field', '"clusterID"', 'version, clusterId, shards, nodes, groups'] },
    { name: 'unknown group field', json: groups({ id: 0, nodes: ['n1'], replicas: 3 }), says: ['groups[0]', 'unknown field', '"replicas"'] },
    { name: 'unknown node field (a typo)', json: one({ ...n1, datadir: 'x' }), says: ['nodes[0]', 'unknown field', '"datadir"'] },
    { name: 'a group that is not an object', json: groups(0), says: ['groups[0] must be an object', 'found 0'] },
  ];

  it('accepts every address form a server can listen on', () => {
    const addresses = ['localhost:1', '127.0.0.1:65535', 'db-1.example.com:7401', 'DB1:7401', '[::1]:7401', '[fe80::1:2]:80', '0.0.0.0:7401'];
    const config = parseClusterConfig(file(addresses.map((address, i) => ({ id: `n${i}`, address, dataDir: `d${i}` }))), P);
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
    const path = writeFile('no-port.json', JSON.stringify(one({ id: 'n1', address: 'localhost', dataDir: 'n1' })));
    const err = configError(() => loadClusterConfig(path));
    expect(err.message).toContain(path);
    expect(err.message).toContain('"localhost"');
  });
});

describe('findNode and defaultKvGroup', () => {
  it('an unknown id lists the known ones', () => {
    const config = parseClusterConfig(file([node('n1', 1), node('n2', 2), node('m1', 3)]), '/x/cluster.json');
    expect(findNode(config, 'n2').id).toBe('n2');
    const err = configError(() => findNode(config, 'n9'));
    expect(err.message).toContain('"n9"');
    expect(err.message).toContain('n1, n2, m1');
  });

  it('a cluster of the shard master alone has no KV group for the SDK', () => {
    const config = parseClusterConfig(file([node('n1', 1)], { groups: [{ id: 0, nodes: ['n1'] }] }), '/x/cluster.json');
    expect(configError(() => defaultKvGroup(config)).message).toContain('no KV group');
  });
});
