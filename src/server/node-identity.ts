// A node's identity record (DESIGN.md 3; issue 7): written into its LevelDB
// when the store is created (`shardpax init`, `shardpax dev`, `server
// --rebuild`) and checked at every start, so that a node never runs on
// storage that is missing, empty, damaged or another node's: a node that
// forgot its promises and votes again can lose acknowledged writes (Paxos
// Made Live §5.1). The record is JSON, validated before it is written and
// after it is read; anything wrong with it is a StorageRefusedError that
// says what happened and what to do.
import { assert, assertNever } from '../core/assert.js';
import type { NodeId } from '../core/ids.js';
import { CLUSTER_ID } from '../runtime/cluster-config.js';

/**
 * Layout version of a node's storage; a store of another version is refused.
 * 2: each group's spaces under its own prefix (`g<id>.`); 1 held one group's unprefixed.
 */
export const STORAGE_FORMAT = 3;

export interface NodeIdentity {
  readonly format: typeof STORAGE_FORMAT;
  readonly clusterId: string;
  readonly nodeId: string;
  /** When the store was created (ISO 8601): for operators, never for safety. */
  readonly createdAt: string;
  /**
   * Created by `server --rebuild`: the node lost its data and must not vote
   * until it has caught up safely. Durable, so a restart mid-rebuild does not
   * make it a voter again.
   */
  readonly rebuilding: boolean;
}

const FIELDS = ['clusterId', 'createdAt', 'format', 'nodeId', 'rebuilding'];

export function newIdentity(clusterId: string, node: NodeId, rebuilding: boolean): NodeIdentity {
  return { format: STORAGE_FORMAT, clusterId, nodeId: node, createdAt: new Date().toISOString(), rebuilding };
}

export function encodeIdentity(identity: NodeIdentity): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(identity));
  // Pair assertion: what we write must read back as the same record.
  const back = decodeIdentity(bytes);
  assert(typeof back !== 'string', `bad identity record: ${typeof back === 'string' ? back : ''}`);
  assert(JSON.stringify(back) === JSON.stringify(identity), 'identity record does not survive its encoding');
  return bytes;
}

/** The record in `bytes`, or what is wrong with them. */
export function decodeIdentity(bytes: Uint8Array): NodeIdentity | string {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    return `not UTF-8 JSON (${(err as Error).message})`;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return 'not a JSON object';
  const r = json as Record<string, unknown>;
  const keys = Object.keys(r).sort();
  if (keys.join() !== FIELDS.join()) return `fields are [${keys.join(', ')}], expected [${FIELDS.join(', ')}]`;
  if (r.format === 1) {
    return (
      'storage format 1, of a shardpax that kept one group per node; this one keeps each group under its own prefix ' +
      `(format ${STORAGE_FORMAT}) and would see none of that data, as if the node had forgotten its promises`
    );
  }
  if (r.format === 2) {
    return (
      'storage format 2, of a shardpax that kept KV data and sessions unsharded; this one keeps each shard under its ' +
      `own range (format ${STORAGE_FORMAT}) and would see none of that data, as if the node had forgotten its promises`
    );
  }
  if (r.format !== STORAGE_FORMAT) return `storage format ${JSON.stringify(r.format)}; this shardpax reads format ${STORAGE_FORMAT}`;
  if (typeof r.clusterId !== 'string' || !CLUSTER_ID.test(r.clusterId)) return `bad clusterId ${JSON.stringify(r.clusterId)}`;
  if (typeof r.nodeId !== 'string' || r.nodeId === '' || r.nodeId.length > 64) return `bad nodeId ${JSON.stringify(r.nodeId)}`;
  if (typeof r.createdAt !== 'string' || Number.isNaN(Date.parse(r.createdAt))) return `bad createdAt ${JSON.stringify(r.createdAt)}`;
  if (typeof r.rebuilding !== 'boolean') return `bad rebuilding ${JSON.stringify(r.rebuilding)}`;
  return { format: STORAGE_FORMAT, clusterId: r.clusterId, nodeId: r.nodeId, createdAt: r.createdAt, rebuilding: r.rebuilding };
}

/** Why a node's storage cannot be used. */
export type StorageProblem =
  | { readonly kind: 'missing' }
  | { readonly kind: 'not-a-folder' }
  | { readonly kind: 'empty-folder' }
  /** LevelDB would not open what is there (a missing CURRENT file, a damaged store). */
  | { readonly kind: 'unopenable'; readonly detail: string }
  /** Another process (or this one) has the store open. */
  | { readonly kind: 'locked'; readonly detail: string }
  | { readonly kind: 'no-identity' }
  | { readonly kind: 'bad-identity'; readonly detail: string }
  | { readonly kind: 'foreign-cluster'; readonly found: string }
  | { readonly kind: 'foreign-node'; readonly found: string }
  /** `init` (or `dev`) found files where it was to create a new store. */
  | { readonly kind: 'not-empty' }
  /** `--rebuild` found a non-empty folder without LevelDB's files: not moved aside, it may be something else. */
  | { readonly kind: 'not-storage' };

export interface StorageWho {
  readonly node: NodeId;
  readonly dir: string;
  readonly clusterId: string;
  /** The cluster file, for the commands the message suggests. */
  readonly clusterFile: string;
}

/** A node refuses its storage: the message says what happened and what to do. */
export class StorageRefusedError extends Error {
  override readonly name = 'StorageRefusedError';
  constructor(
    readonly who: StorageWho,
    readonly problem: StorageProblem,
    options?: ErrorOptions,
  ) {
    super(refusalMessage(who, problem), options);
  }
}

function refusalMessage(w: StorageWho, p: StorageProblem): string {
  const init = `shardpax init --cluster ${w.clusterFile} --node ${w.node}`;
  const rebuild = `shardpax server --cluster ${w.clusterFile} --node ${w.node} --rebuild`;
  const newOrLost =
    `If ${w.node} is a brand-new node, create its storage with \`${init}\`. ` +
    `If it lost its data, start it with \`${rebuild}\`: it rejoins without voting and catches up from its peers.`;
  const lostOrDamaged =
    `If ${w.node}'s data is lost or damaged, start it with \`${rebuild}\`: the folder is moved aside, ` +
    'and the node rejoins without voting and catches up from its peers.';
  const at = `node ${w.node}: data folder ${w.dir}`;
  switch (p.kind) {
    case 'missing':
      return `${at} does not exist. ${newOrLost}`;
    case 'not-a-folder':
      return `${at} is not a folder. Check dataDir in ${w.clusterFile}.`;
    case 'empty-folder':
      return `${at} is empty: no storage was ever created there, or its files were deleted. ${newOrLost}`;
    case 'unopenable':
      return `${at} holds no LevelDB store that opens (a file such as CURRENT is missing, or the store is damaged): ${p.detail}. ${lostOrDamaged}`;
    case 'locked':
      return `${at} is in use by another process (is ${w.node} already running?): ${p.detail}. Stop that process first.`;
    case 'no-identity':
      return (
        `${at} holds a LevelDB store without an identity record: an empty store, or one not created by ` +
        `\`shardpax init\` (or by a shardpax older than identity records). ${lostOrDamaged}`
      );
    case 'bad-identity':
      return `${at} has a damaged identity record (${p.detail}). ${lostOrDamaged}`;
    case 'foreign-cluster':
      return (
        `${at} belongs to cluster ${p.found}, but ${w.clusterFile} is cluster ${w.clusterId}. ` +
        `Check dataDir in the cluster file; to make ${w.node} a new member of ${w.clusterId} anyway, ` +
        `start it with \`${rebuild}\` (the folder is moved aside, not deleted).`
      );
    case 'foreign-node':
      return `${at} holds node ${p.found}'s storage, not ${w.node}'s. Check the dataDir entries in ${w.clusterFile}: two nodes are mixed up.`;
    case 'not-empty':
      return `${at} already holds files; \`shardpax init\` only creates new storage. To run the node on them, use \`shardpax server\`; to replace them, \`${rebuild}\`.`;
    case 'not-storage':
      return `${at} holds files but none of LevelDB's, so --rebuild does not move it aside: check dataDir in ${w.clusterFile}, or move the folder yourself.`;
    default:
      return assertNever(p, 'StorageProblem');
  }
}
