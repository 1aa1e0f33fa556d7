// `shardpax dev` (and `npm start`): a local group of server processes on
// localhost with data under one folder. Writes <dir>/cluster.json the first
// time and reuses it (and the data) after; prints `ready` once a leader is
// elected; stops its servers on Ctrl-C or SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchStatus } from '../client/admin.js';
import { type ClusterConfig, loadClusterConfig } from '../server/cluster-config.js';

export interface DevOptions {
  readonly dir: string;
  readonly replicas: number;
  readonly port: number;
}

const BIN = fileURLToPath(new URL('../../bin/shardpax.mjs', import.meta.url));

export async function runDev(o: DevOptions): Promise<void> {
  const dir = resolve(o.dir);
  const file = join(dir, 'cluster.json');
  mkdirSync(dir, { recursive: true });
  if (existsSync(file)) {
    console.log(`using the existing cluster in ${file} (its data is kept)`);
  } else {
    writeClusterFile(file, o);
    console.log(`created ${file}: ${o.replicas} nodes on 127.0.0.1:${o.port}-${o.port + o.replicas - 1}`);
  }
  const cluster = loadClusterConfig(file);
  const nodes = cluster.groups.flatMap((g) => g.nodes);
  const children = nodes.map((n) => {
    const log = openSync(join(dir, `${n.id}.log`), 'a');
    const child = spawn(process.execPath, [BIN, 'server', '--cluster', file, '--node', n.id], {
      stdio: ['ignore', log, log],
    });
    child.on('exit', (code, signal) => {
      if (!stopping) console.error(`node ${n.id} exited (${signal ?? `code ${code}`}); see ${join(dir, `${n.id}.log`)}`);
    });
    return child;
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log('stopping the local cluster');
    void Promise.all(children.map(stopChild)).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const leader = await awaitLeader(cluster, 30_000);
  if (leader === undefined) {
    console.error('no leader was elected within 30 s; see the node logs in ' + dir);
    stop();
    return;
  }
  console.log(`ready: ${nodes.length} nodes, leader ${leader}. Data in ${dir}. Try:`);
  console.log(`  ./bin/shardpax.mjs put greeting hello --cluster ${file}`);
  console.log(`  ./bin/shardpax.mjs get greeting --cluster ${file}`);
  console.log('Ctrl-C stops the cluster.');
}

function writeClusterFile(file: string, o: DevOptions): void {
  const nodes = Array.from({ length: o.replicas }, (_, i) => ({
    id: `n${i + 1}`,
    address: `127.0.0.1:${o.port + i}`,
    dataDir: `n${i + 1}`,
  }));
  writeFileSync(file, JSON.stringify({ version: 1, groups: [{ id: 1, nodes }] }, null, 2) + '\n');
}

async function awaitLeader(cluster: ClusterConfig, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  const nodes = cluster.groups.flatMap((g) => g.nodes);
  while (Date.now() < deadline) {
    const statuses = await Promise.allSettled(nodes.map((n) => fetchStatus(n.address, 500)));
    for (const s of statuses) if (s.status === 'fulfilled' && s.value.leader) return s.value.node;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
