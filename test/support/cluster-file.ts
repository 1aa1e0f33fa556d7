// A version-2 cluster file's contents for tests: the nodes given, group 0
// (the shard master's) and KV group 1, both on every node.
export interface NodeEntry {
  readonly id: string;
  readonly address: string;
  readonly dataDir: string;
}

export function clusterJson(clusterId: string, nodes: readonly NodeEntry[], shards = 64): Record<string, unknown> {
  const ids = nodes.map((n) => n.id);
  return { version: 2, clusterId, shards, nodes, groups: [{ id: 0, nodes: ids }, { id: 1, nodes: ids }] };
}
