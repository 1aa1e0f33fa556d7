// The shape of a local cluster (`shardpax dev --nodes N --groups G --replicas
// R --shards S`): the cluster file it writes places group 0 and the KV groups
// round-robin over the nodes, R replicas each, each group starting where the
// last one ended. Nothing is started here.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster, LocalClusterError } from '../src/cli/local-cluster.js';
import { loadClusterConfig } from '../src/runtime/cluster-config.js';

const root = mkdtempSync(join(tmpdir(), 'shardpax-local-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('LocalCluster.create', () => {
  it('places the groups round-robin, R replicas each, and keeps the shard count', async () => {
    const dir = join(root, 'five');
    const { cluster, created } = await LocalCluster.create({ dir, nodes: 5, groups: 4, replicas: 3, shards: 16 });
    expect(created).toBe(true);
    const config = loadClusterConfig(cluster.file);
    expect(config.shards).toBe(16);
    expect(config.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    expect(config.groups.map((g) => `${g.id}:${g.nodes.join(',')}`)).toEqual([
      '0:n1,n2,n3',
      '1:n1,n4,n5',
      '2:n2,n3,n4',
      '3:n1,n2,n5',
      '4:n3,n4,n5',
    ]);
    expect(cluster.kvGroup).toBe(1);
    for (const n of config.nodes) expect(existsSync(n.dataDir)).toBe(true); // every node's storage, created first
  });

  it('defaults: as many nodes as replicas, one KV group, 64 shards', async () => {
    const { cluster } = await LocalCluster.create({ dir: join(root, 'default'), replicas: 3 });
    const config = loadClusterConfig(cluster.file);
    expect(config.shards).toBe(64);
    expect(config.groups.map((g) => `${g.id}:${g.nodes.join(',')}`)).toEqual(['0:n1,n2,n3', '1:n1,n2,n3']);
  });

  it('refuses more replicas than nodes, writing nothing', async () => {
    const dir = join(root, 'too-few');
    const err: unknown = await LocalCluster.create({ dir, nodes: 2, replicas: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LocalClusterError);
    expect(String(err)).toContain('3 replicas per group need at least as many nodes (there are 2)');
    expect(existsSync(dir)).toBe(false);
  });
});
