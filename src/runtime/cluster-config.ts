// The cluster file (`cluster.json`): which groups exist, their nodes, where
// each listens and keeps its data. Parsed once at the edge; a malformed file
// is a ClusterConfigError that says what is wrong and where.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type GroupId, groupId, type NodeId, nodeId } from '../core/ids.js';

export interface NodeConfig {
  readonly id: NodeId;
  /** host:port it serves peers, clients and admins on. */
  readonly address: string;
  /** Absolute path of its data folder. */
  readonly dataDir: string;
}

export interface GroupConfig {
  readonly id: GroupId;
  readonly nodes: readonly NodeConfig[];
}

export interface ClusterConfig {
  readonly path: string;
  /** Names this cluster: written into every node's storage at creation and checked on every connection. */
  readonly clusterId: string;
  readonly groups: readonly GroupConfig[];
}

export class ClusterConfigError extends Error {
  override readonly name = 'ClusterConfigError';
}

/** What a cluster id may be (it travels as gRPC metadata text). */
export const CLUSTER_ID = /^[A-Za-z0-9-]{1,64}$/;
const ADDRESS = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/;

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

export function parseClusterConfig(json: unknown, path: string): ClusterConfig {
  const where = (what: string) => `${path}: ${what}`;
  const root = record(json, where('the top level'));
  if (root.version !== 1) throw new ClusterConfigError(where(`version must be 1, found ${JSON.stringify(root.version)}`));
  if (typeof root.clusterId !== 'string' || !CLUSTER_ID.test(root.clusterId)) {
    throw new ClusterConfigError(
      where(`clusterId must be 1-64 letters, digits or '-', found ${JSON.stringify(root.clusterId)}`),
    );
  }
  const clusterId = root.clusterId;
  if (!Array.isArray(root.groups) || root.groups.length === 0) {
    throw new ClusterConfigError(where('groups must be a non-empty array'));
  }
  const seen = new Set<string>();
  const groups = root.groups.map((g: unknown, gi: number) => {
    const gr = record(g, where(`groups[${gi}]`));
    if (typeof gr.id !== 'number' || !Number.isSafeInteger(gr.id) || gr.id < 0) {
      throw new ClusterConfigError(where(`groups[${gi}].id must be a non-negative integer`));
    }
    if (!Array.isArray(gr.nodes) || gr.nodes.length === 0) {
      throw new ClusterConfigError(where(`groups[${gi}].nodes must be a non-empty array`));
    }
    const nodes = gr.nodes.map((n: unknown, ni: number) => {
      const at = `groups[${gi}].nodes[${ni}]`;
      const nr = record(n, where(at));
      if (typeof nr.id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(nr.id)) {
        throw new ClusterConfigError(where(`${at}.id must be 1-64 letters, digits, '_', '.' or '-'`));
      }
      if (seen.has(nr.id)) throw new ClusterConfigError(where(`node id ${nr.id} appears twice`));
      seen.add(nr.id);
      if (typeof nr.address !== 'string' || !ADDRESS.test(nr.address)) {
        throw new ClusterConfigError(where(`${at}.address must be host:port, found ${JSON.stringify(nr.address)}`));
      }
      if (typeof nr.dataDir !== 'string' || nr.dataDir === '') {
        throw new ClusterConfigError(where(`${at}.dataDir must be a path`));
      }
      const dataDir = isAbsolute(nr.dataDir) ? nr.dataDir : resolve(dirname(path), nr.dataDir);
      return { id: nodeId(nr.id), address: nr.address, dataDir };
    });
    return { id: groupId(gr.id), nodes };
  });
  return { path, clusterId, groups };
}

export function findNode(config: ClusterConfig, id: string): { group: GroupConfig; node: NodeConfig } {
  for (const group of config.groups) {
    const node = group.nodes.find((n) => n.id === id);
    if (node !== undefined) return { group, node };
  }
  const known = config.groups.flatMap((g) => g.nodes.map((n) => n.id)).join(', ');
  throw new ClusterConfigError(`${config.path}: no node ${JSON.stringify(id)} (nodes: ${known})`);
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ClusterConfigError(`${what} must be an object`);
  return v as Record<string, unknown>;
}
