// A node's storage lifecycle (issue 7): create it with an identity record
// (`shardpax init`, `shardpax dev`), open it only when it is there and is
// this node's of this cluster, and rebuild it (`server --rebuild`) by moving
// the old folder aside and creating a fresh store marked `rebuilding`.
//
// Moving aside rather than deleting: the old files stay for inspection (a
// damaged store is evidence) and a mistaken --rebuild loses nothing; the
// operator deletes `<dataDir>.before-rebuild-<time>` once done with it.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ClusterConfig, NodeConfig } from '../runtime/cluster-config.js';
import { LevelStorage, StorageOpenError } from './level-storage.js';
import {
  decodeIdentity,
  encodeIdentity,
  newIdentity,
  type NodeIdentity,
  type StorageProblem,
  StorageRefusedError,
  type StorageWho,
} from './node-identity.js';

export interface OpenedStorage {
  readonly storage: LevelStorage;
  readonly identity: NodeIdentity;
}

type Contents = 'missing' | 'not-a-folder' | 'empty' | readonly string[];

/** Creates `node`'s storage with its identity record; refuses a folder that holds anything. */
export async function initNodeStorage(cluster: ClusterConfig, node: NodeConfig): Promise<NodeIdentity> {
  const who = whoOf(cluster, node);
  const contents = folderContents(node.dataDir);
  if (contents === 'not-a-folder') throw new StorageRefusedError(who, { kind: 'not-a-folder' });
  if (typeof contents !== 'string') throw new StorageRefusedError(who, { kind: 'not-empty' });
  const { storage, identity } = await createWithIdentity(cluster, node, false);
  await storage.close();
  return identity;
}

/** Opens `node`'s storage if it is there and its identity record names this cluster and node. */
export async function openNodeStorage(cluster: ClusterConfig, node: NodeConfig, spaces: readonly string[]): Promise<OpenedStorage> {
  const who = whoOf(cluster, node);
  const contents = folderContents(node.dataDir);
  if (contents === 'missing') throw new StorageRefusedError(who, { kind: 'missing' });
  if (contents === 'not-a-folder') throw new StorageRefusedError(who, { kind: 'not-a-folder' });
  if (contents === 'empty') throw new StorageRefusedError(who, { kind: 'empty-folder' });
  const storage = await LevelStorage.open(node.dataDir, spaces).catch((err: unknown) => {
    throw new StorageRefusedError(who, openProblem(err), { cause: err });
  });
  const identity = checkIdentity(storage.readIdentity(), cluster, node);
  if ('kind' in identity) {
    await storage.close();
    throw new StorageRefusedError(who, identity);
  }
  return { storage, identity };
}

/** Checks `node`'s storage as openNodeStorage does, without keeping it open. */
export async function checkNodeStorage(cluster: ClusterConfig, node: NodeConfig): Promise<NodeIdentity> {
  const { storage, identity } = await openNodeStorage(cluster, node, []);
  await storage.close();
  return identity;
}

/**
 * A fresh store for `node`, marked rebuilding: the old folder (if it holds
 * anything) is moved aside to `movedTo`. Refuses a folder another process
 * holds, and one without LevelDB's files (a dataDir pointing at the wrong place).
 */
export async function rebuildNodeStorage(
  cluster: ClusterConfig,
  node: NodeConfig,
  spaces: readonly string[],
): Promise<OpenedStorage & { readonly movedTo: string | undefined }> {
  const who = whoOf(cluster, node);
  const contents = folderContents(node.dataDir);
  if (contents === 'not-a-folder') throw new StorageRefusedError(who, { kind: 'not-a-folder' });
  let movedTo: string | undefined;
  if (typeof contents !== 'string') {
    if (!contents.some(isLevelDbFile)) throw new StorageRefusedError(who, { kind: 'not-storage' });
    await refuseIfLocked(who, node.dataDir);
    movedTo = `${node.dataDir}.before-rebuild-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(node.dataDir, movedTo);
    syncFolder(dirname(node.dataDir)); // the move is durable before the new store exists
  }
  const opened = await createWithIdentity(cluster, node, true, spaces);
  return { ...opened, movedTo };
}

async function createWithIdentity(
  cluster: ClusterConfig,
  node: NodeConfig,
  rebuilding: boolean,
  spaces: readonly string[] = [],
): Promise<OpenedStorage> {
  const who = whoOf(cluster, node);
  mkdirSync(dirname(node.dataDir), { recursive: true });
  const storage = await LevelStorage.create(node.dataDir, spaces).catch((err: unknown) => {
    throw new StorageRefusedError(who, openProblem(err), { cause: err });
  });
  const identity = newIdentity(cluster.clusterId, node.id, rebuilding);
  try {
    await storage.writeIdentity(encodeIdentity(identity));
  } catch (err) {
    await storage.close();
    throw err;
  }
  syncFolder(dirname(node.dataDir)); // the new folder's entry is durable too
  return { storage, identity };
}

/** The identity record in `bytes` if it is `node`'s of `cluster`; otherwise what is wrong. */
function checkIdentity(bytes: Uint8Array | undefined, cluster: ClusterConfig, node: NodeConfig): NodeIdentity | StorageProblem {
  if (bytes === undefined) return { kind: 'no-identity' };
  const identity = decodeIdentity(bytes);
  if (typeof identity === 'string') return { kind: 'bad-identity', detail: identity };
  if (identity.clusterId !== cluster.clusterId) return { kind: 'foreign-cluster', found: identity.clusterId };
  if (identity.nodeId !== node.id) return { kind: 'foreign-node', found: identity.nodeId };
  return identity;
}

async function refuseIfLocked(who: StorageWho, dir: string): Promise<void> {
  try {
    await (await LevelStorage.open(dir, [])).close();
  } catch (err) {
    // Anything but a lock is why the operator rebuilds: a damaged store is moved aside.
    if (err instanceof StorageOpenError && err.locked) throw new StorageRefusedError(who, openProblem(err), { cause: err });
  }
}

function openProblem(err: unknown): StorageProblem {
  const detail = err instanceof Error ? err.message : String(err);
  return err instanceof StorageOpenError && err.locked ? { kind: 'locked', detail } : { kind: 'unopenable', detail };
}

function folderContents(dir: string): Contents {
  try {
    if (!statSync(dir).isDirectory()) return 'not-a-folder';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  const entries = readdirSync(dir);
  return entries.length === 0 ? 'empty' : entries;
}

/** File names LevelDB keeps in its folder (a damaged store still has some of them). */
function isLevelDbFile(name: string): boolean {
  return ['CURRENT', 'LOCK', 'LOG', 'LOG.old'].includes(name) || /^MANIFEST-\d+$/.test(name) || /^\d+\.(log|ldb|sst)$/.test(name);
}

function syncFolder(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function whoOf(cluster: ClusterConfig, node: NodeConfig): StorageWho {
  return { node: node.id, dir: node.dataDir, clusterId: cluster.clusterId, clusterFile: cluster.path };
}
