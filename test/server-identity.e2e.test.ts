// `shardpax server`, `init` and `--rebuild` as real processes (issue 7): a
// server refuses a missing data folder, an empty store, a store whose CURRENT
// file was deleted, and another cluster's store, each with exit code 1 and a
// message that says what happened and what to do; `init` then `server`
// works; `--rebuild` moves the old folder aside and starts on a fresh store
// whose identity record is marked rebuilding, and stays so across a restart.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../src/cli/local-cluster.js';
import { connectShardMaster } from '../src/client/shard-master-admin.js';
import { fetchStatus } from '../src/client/admin.js';
import { connect } from '../src/client/db.js';
import { findNode, loadClusterConfig } from '../src/runtime/cluster-config.js';
import { LevelStorage } from '../src/server/level-storage.js';
import { decodeIdentity } from '../src/server/node-identity.js';
import { checkNodeStorage } from '../src/server/node-storage.js';
import { clusterJson } from './support/cluster-file.js';

const BIN = new URL('../bin/shardpax.mjs', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'shardpax-identity-'));
const spawned: ChildProcess[] = [];

afterAll(() => {
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one `shardpax` command to completion. */
function cli(args: readonly string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    spawned.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`shardpax ${args.join(' ')} took over ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A running `shardpax server`: resolves once it prints its serving line. */
async function serve(
  file: string,
  node: string,
  extra: readonly string[] = [],
): Promise<{ child: ChildProcess; stdout: () => string; output: () => string }> {
  const child = spawn(process.execPath, [BIN, 'server', '--cluster', file, '--node', node, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const deadline = Date.now() + 20_000;
  while (!stdout.includes('serving on')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server ${node} did not start\nstdout: ${stdout}\nstderr: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, stdout: () => stdout, output: () => `stdout: ${stdout}\nstderr: ${stderr}` };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

/** A cluster file `name`.json in the test folder, one group of `nodes`, each on a free port with data in <dir>/<node>. */
async function clusterFile(name: string, clusterId: string, nodes: readonly string[]): Promise<string> {
  const file = join(dir, `${name}.json`);
  const list = await Promise.all(nodes.map(async (id) => ({ id, address: `127.0.0.1:${await freePort()}`, dataDir: id })));
  writeFileSync(file, JSON.stringify(clusterJson(clusterId, list)));
  return file;
}

describe('shardpax server refuses storage that is not its own', () => {
  it('missing folder, empty store, deleted CURRENT, foreign identity: exit 1 and a message saying what to do', { timeout: 60_000 }, async () => {
    const file = await clusterFile('refusals', 'cluster-a', ['missing', 'empty', 'nocurrent', 'foreign']);
    const cluster = loadClusterConfig(file);
    const dataDir = (id: string) => findNode(cluster, id).dataDir;
    // An empty store: LevelDB files, no identity record (what LevelDB's createIfMissing used to make).
    await (await LevelStorage.create(dataDir('empty'), [])).close();
    expect(await cli(['init', '--cluster', file, '--node', 'nocurrent'])).toMatchObject({ code: 0 });
    rmSync(join(dataDir('nocurrent'), 'CURRENT'));
    // Another cluster's node of the same name and folder.
    const other = join(dir, 'other.json');
    writeFileSync(other, JSON.stringify(clusterJson('cluster-b', [{ id: 'foreign', address: '127.0.0.1:1', dataDir: 'foreign' }])));
    expect(await cli(['init', '--cluster', other, '--node', 'foreign'])).toMatchObject({ code: 0 });

    const runs = await Promise.all(['missing', 'empty', 'nocurrent', 'foreign'].map((id) => cli(['server', '--cluster', file, '--node', id])));
    const [missing, empty, nocurrent, foreign] = runs;
    const init = (id: string) => `\`shardpax init --cluster ${file} --node ${id}\``;
    const rebuild = (id: string) => `\`shardpax server --cluster ${file} --node ${id} --rebuild\``;
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).not.toContain('serving');
    }
    expect(missing?.stderr).toContain(`error: node missing: data folder ${dataDir('missing')} does not exist.`);
    expect(missing?.stderr).toContain(`If missing is a brand-new node, create its storage with ${init('missing')}.`);
    expect(missing?.stderr).toContain(`If it lost its data, start it with ${rebuild('missing')}`);
    expect(existsSync(dataDir('missing'))).toBe(false);

    expect(empty?.stderr).toContain(`error: node empty: data folder ${dataDir('empty')} holds a LevelDB store without an identity record`);
    expect(empty?.stderr).toContain(`start it with ${rebuild('empty')}`);

    expect(nocurrent?.stderr).toContain(
      `error: node nocurrent: data folder ${dataDir('nocurrent')} holds no LevelDB store that opens (a file such as CURRENT is missing`,
    );
    expect(nocurrent?.stderr).toContain(`start it with ${rebuild('nocurrent')}`);
    expect(existsSync(join(dataDir('nocurrent'), 'CURRENT'))).toBe(false); // no empty store was made on the way

    expect(foreign?.stderr).toContain(`error: node foreign: data folder ${dataDir('foreign')} belongs to cluster cluster-b, but ${file} is cluster cluster-a.`);
  });
});

describe('init, server, --rebuild', () => {
  it('init then server serves; --rebuild moves the data aside and starts on a fresh store marked rebuilding', { timeout: 90_000 }, async () => {
    const file = await clusterFile('single', 'cluster-s', ['solo']);
    const cluster = loadClusterConfig(file);
    const node = findNode(cluster, 'solo');

    const init = await cli(['init', '--cluster', file, '--all']);
    expect(init, init.stderr).toMatchObject({ code: 0 });
    expect(init.stdout).toContain(`node solo: created its storage in ${node.dataDir} (cluster cluster-s)`);
    const again = await cli(['init', '--cluster', file, '--node', 'solo']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already holds files; `shardpax init` only creates new storage');

    // 1. init, then server: it serves and names its cluster.
    const first = await serve(file, 'solo');
    expect(first.stdout()).toContain('(cluster cluster-s) serving on');
    expect(first.stdout()).not.toContain('rebuilding');
    expect((await fetchStatus(node.address, 2_000, 'cluster-s')).clusterId).toBe('cluster-s');
    const admin = await connectShardMaster({ cluster: file, timeoutMs: 10_000 });
    await admin.join(1, ['solo']); // group 1 serves only the shards a config gives it
    await admin.close();
    const db = await connect({ cluster: file, timeoutMs: 10_000 });
    await db.put('before', 'rebuild');
    await db.close();
    expect(await stop(first.child), first.output()).toBe(0);
    expect((await checkNodeStorage(cluster, node)).rebuilding).toBe(false);

    // 2. --rebuild: the old folder is moved aside, a fresh store is made and marked.
    const rebuilt = await serve(file, 'solo', ['--rebuild']);
    const moved = /the old data folder was moved to (\S+)/.exec(rebuilt.stdout())?.[1];
    expect(moved, rebuilt.stdout()).toBeDefined();
    expect(rebuilt.stdout()).toContain('rebuilding its storage from its peers');
    expect(await stop(rebuilt.child), rebuilt.output()).toBe(0);
    const identity = await checkNodeStorage(cluster, node);
    expect(identity).toMatchObject({ format: 3, clusterId: 'cluster-s', nodeId: 'solo', rebuilding: true });
    const old = await LevelStorage.open(moved ?? '', []);
    try {
      const oldIdentity = old.readIdentity();
      expect(oldIdentity === undefined ? undefined : decodeIdentity(oldIdentity)).toMatchObject({ rebuilding: false });
    } finally {
      await old.close();
    }
    expect(readdirSync(dir)).toContain(`solo.before-rebuild-${(moved ?? '').split('.before-rebuild-')[1]}`);

    // 3. A plain restart of a rebuilding node is still a rebuild: the mark is durable.
    const restarted = await serve(file, 'solo');
    expect(restarted.stdout()).toContain('rebuilding its storage from its peers');
    expect(await stop(restarted.child), restarted.output()).toBe(0);
  });
});
