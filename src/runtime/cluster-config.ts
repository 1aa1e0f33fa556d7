// The cluster file (`cluster.json`), version 2: the nodes (server processes:
// where each listens and keeps its data), the replica groups and which nodes
// host each (a node hosts one replica of every group that names it), and the
// shard count. Group 0 is the shard master's; KV groups have ids from 1.
// Parsed once at the edge; a malformed file is a ClusterConfigError that says
// what is wrong and where.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { type GroupId, groupId, type NodeId, nodeId } from '../core/ids.js';
import { addressProblem } from './address.js';

export interface NodeConfig {
  readonly id: NodeId;
  /** host:port it serves peers, clients and admins on. */
  readonly address: string;
  /** Absolute path of its data folder. */
  readonly dataDir: string;
}

/** A replica group and the nodes that host its replicas. */
export interface GroupConfig {
  readonly id: GroupId;
  readonly nodes: readonly NodeId[];
}

export interface ClusterConfig {
  readonly path: string;
  /** Names this cluster: written into every node's storage at creation and checked on every connection. */
  readonly clusterId: string;
  /** Keys map to this many shards (fixed when the cluster is created). */
  readonly shards: number;
  /** Every node (server process); a node hosts one replica of each group that names it. */
  readonly nodes: readonly NodeConfig[];
  /** Group 0 (the shard master's) first, then the KV groups, by ascending id. */
  readonly groups: readonly GroupConfig[];
}

export class ClusterConfigError extends Error {
  override readonly name = 'ClusterConfigError';
}

/** What a cluster id may be (it travels as gRPC metadata text). */
export const CLUSTER_ID = /^[A-Za-z0-9-]{1,64}$/;
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** The shard master's group. */
export const SHARD_MASTER_GROUP: GroupId = groupId(0);
// The shard master's limits (src/shardmaster/config.ts, which this layer may not
// import; test/cluster-config.test.ts checks they agree).
export const MAX_SHARDS = 4096;
export const MAX_GROUP_ID = 65_535;
export const MAX_NODES_PER_GROUP = 16;
// Every field the file may hold: anything else is refused, so a typo
// ("datadir") fails loudly instead of being ignored. A new field goes here.
const ROOT_FIELDS = ['version', 'clusterId', 'shards', 'nodes', 'groups'];
const GROUP_FIELDS = ['id', 'nodes'];
const NODE_FIELDS = ['id', 'address', 'dataDir'];

export function loadClusterConfig(path: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ClusterConfigError(
      e.code === 'ENOENT'
        ? `no cluster file at ${path} (start a local cluster with \`npm start\`, or pass --cluster <file>)`
        : `cannot read cluster file ${path}: ${e.message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ClusterConfigError(`cluster file ${path} is not JSON: ${(err as Error).message}`);
  }
  return parseClusterConfig(json, path);
}

/** Checks every field; the first problem is a ClusterConfigError naming the file and the field. */
export function parseClusterConfig(json: unknown, path: string): ClusterConfig {
  const fail: (what: string) => never = (what) => {
    throw new ClusterConfigError(`${path}: ${what}`);
  };
  if (typeof json === 'object' && json !== null && !Array.isArray(json) && (json as Record<string, unknown>).version === 1) {
    fail(VERSION_1_REFUSED);
  }
  const root = record(json, 'the top level', ROOT_FIELDS, fail);
  if (root.version !== 2) fail(`version must be 2, found ${show(root.version)}`);
  if (typeof root.clusterId !== 'string' || !CLUSTER_ID.test(root.clusterId)) {
    fail(`clusterId must be 1-64 letters, digits or '-', found ${show(root.clusterId)}`);
  }
  if (typeof root.shards !== 'number' || !Number.isSafeInteger(root.shards) || root.shards < 1 || root.shards > MAX_SHARDS) {
    fail(`shards must be a whole number from 1 to ${MAX_SHARDS}, found ${show(root.shards)}`);
  }
  if (!Array.isArray(root.nodes) || root.nodes.length === 0) fail('nodes must be a non-empty array');
  const nodes = root.nodes.map((n: unknown, ni: number) => parseNode(n, `nodes[${ni}]`, path, fail));
  checkUniqueNodes(nodes, fail);
  if (!Array.isArray(root.groups) || root.groups.length === 0) fail('groups must be a non-empty array');
  const declared = new Set(nodes.map((n) => n.id));
  const groups = root.groups.map((g: unknown, gi: number) => parseGroup(g, `groups[${gi}]`, declared, fail));
  const ids = new Map<number, string>();
  groups.forEach((g, gi) => {
    const first = ids.get(g.id);
    if (first !== undefined) fail(`groups[${gi}].id ${g.id} is already the id of ${first}`);
    ids.set(g.id, `groups[${gi}].id`);
  });
  if (!ids.has(SHARD_MASTER_GROUP)) fail("groups must hold group 0, the shard master's group (KV groups have ids from 1)");
  return { path, clusterId: root.clusterId, shards: root.shards, nodes, groups: [...groups].sort((a, b) => a.id - b.id) };
}

const VERSION_1_REFUSED =
  'version 1 is no longer read (nodes listed inside their one group, no shard master). Convert the file to version 2: ' +
  '{ "version": 2, "clusterId": <the same>, "shards": 64, "nodes": [each node once: { "id", "address", "dataDir" }], ' +
  '"groups": [{ "id": 0, "nodes": [node ids] } (the shard master\'s group), { "id": 1, "nodes": [node ids] }, ...] }. ' +
  "Storage written for version 1 is in a format this shardpax does not read: create the cluster's storage anew " +
  '(for a `shardpax dev` cluster: remove its folder and run `shardpax dev` again)';

function parseGroup(json: unknown, at: string, declared: ReadonlySet<string>, fail: (what: string) => never): GroupConfig {
  const g = record(json, at, GROUP_FIELDS, fail);
  if (typeof g.id !== 'number' || !Number.isSafeInteger(g.id) || g.id < 0 || g.id > MAX_GROUP_ID) {
    fail(`${at}.id must be a whole number from 0 to ${MAX_GROUP_ID} (0 is the shard master's group), found ${show(g.id)}`);
  }
  if (!Array.isArray(g.nodes) || g.nodes.length === 0 || g.nodes.length > MAX_NODES_PER_GROUP) {
    fail(`${at}.nodes must be an array of 1 to ${MAX_NODES_PER_GROUP} node ids, found ${show(g.nodes)}`);
  }
  const members: NodeId[] = [];
  g.nodes.forEach((n: unknown, ni: number) => {
    if (typeof n !== 'string' || !declared.has(n)) {
      fail(`${at}.nodes[${ni}] must be the id of a node in nodes (${[...declared].join(', ')}), found ${show(n)}`);
    }
    const id = nodeId(n);
    if (members.includes(id)) fail(`${at}.nodes[${ni}]: node ${id} is named twice in the group`);
    members.push(id);
  });
  return { id: groupId(g.id), nodes: members };
}

function parseNode(json: unknown, at: string, path: string, fail: (what: string) => never): NodeConfig {
  const n = record(json, at, NODE_FIELDS, fail);
  if (typeof n.id !== 'string' || !NODE_ID.test(n.id)) {
    fail(`${at}.id must be 1-64 letters, digits, '_', '.' or '-', found ${show(n.id)}`);
  }
  if (typeof n.address !== 'string') fail(`${at}.address must be host:port, found ${show(n.address)}`);
  const problem = addressProblem(n.address);
  if (problem !== undefined) fail(`${at}.address must be host:port, found ${show(n.address)}: ${problem}`);
  if (typeof n.dataDir !== 'string' || n.dataDir === '') fail(`${at}.dataDir must be a path, found ${show(n.dataDir)}`);
  const dataDir = isAbsolute(n.dataDir) ? resolve(n.dataDir) : resolve(dirname(path), n.dataDir);
  return { id: nodeId(n.id), address: n.address, dataDir };
}

/** Ids, addresses and data folders each name one thing: two nodes on one port or one folder would fight over it. */
function checkUniqueNodes(nodes: readonly NodeConfig[], fail: (what: string) => never): void {
  const nodeIds = new Map<string, string>();
  const addresses = new Map<string, string>(); // hostnames are case-insensitive
  const dirs: Array<{ dir: string; at: string }> = [];
  nodes.forEach((n, ni) => {
    const at = `nodes[${ni}]`;
    const sameId = nodeIds.get(n.id);
    if (sameId !== undefined) fail(`${at}.id: node id ${n.id} appears twice (also at ${sameId})`);
    nodeIds.set(n.id, `${at}.id`);
    const sameAddress = addresses.get(n.address.toLowerCase());
    if (sameAddress !== undefined) fail(`${at}.address ${n.address} is already the address of ${sameAddress}`);
    addresses.set(n.address.toLowerCase(), `${at}.address`);
    for (const other of dirs) {
      if (other.dir === n.dataDir) fail(`${at}.dataDir ${n.dataDir} is already the data folder of ${other.at}`);
      // A folder inside another node's would be wiped with it (or wipe it).
      if (n.dataDir.startsWith(other.dir + sep) || other.dir.startsWith(n.dataDir + sep)) {
        fail(`${at}.dataDir ${n.dataDir} and ${other.at} (${other.dir}): one data folder is inside the other`);
      }
    }
    dirs.push({ dir: n.dataDir, at: `${at}.dataDir` });
  });
}

export function findNode(config: ClusterConfig, id: string): NodeConfig {
  const node = config.nodes.find((n) => n.id === id);
  if (node !== undefined) return node;
  const known = config.nodes.map((n) => n.id).join(', ');
  throw new ClusterConfigError(`${config.path}: no node ${JSON.stringify(id)} (nodes: ${known})`);
}

/**
 * The KV group the SDK's get, put and delete go to until they are routed by
 * shard: the lowest id above 0 (group 0 is the shard master's).
 */
export function defaultKvGroup(config: ClusterConfig): GroupId {
  const ids = config.groups.map((g) => g.id).filter((id) => id > 0);
  if (ids.length === 0) throw new ClusterConfigError(`${config.path}: no KV group (a group with an id above 0)`);
  return groupId(Math.min(...ids));
}

/** The groups `node` hosts a replica of, by ascending id. */
export function groupsOf(config: ClusterConfig, node: NodeId): GroupConfig[] {
  return config.groups.filter((g) => g.nodes.includes(node)).sort((a, b) => a.id - b.id);
}

function record(v: unknown, at: string, fields: readonly string[], fail: (what: string) => never): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(`${at} must be an object, found ${show(v)}`);
  const unknown = Object.keys(v).filter((k) => !fields.includes(k));
  if (unknown.length > 0) {
    fail(`${at} has unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')} (the fields are ${fields.join(', ')})`);
  }
  return v as Record<string, unknown>;
}

/** A value found in the file, for a message: its JSON, cut short. */
function show(v: unknown): string {
  const text = v === undefined ? 'nothing' : JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
