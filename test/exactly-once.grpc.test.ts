// Exactly-once RPC between two real processes over gRPC (issue 2): both
// transports duplicate 30% and drop 10% of messages; the counter must end at
// exactly clients x increments, each result seen once.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { checkExactlyOnce } from './support/counter.js';

const SCRIPT = new URL('./support/counter-process.ts', import.meta.url).pathname;
const children: ChildProcess[] = [];

function start(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

async function firstLine(child: ChildProcess, prefix: string): Promise<string> {
  if (child.stdout === null) throw new Error('no stdout');
  for await (const line of createInterface({ input: child.stdout })) {
    if (line.startsWith(prefix)) return line;
  }
  throw new Error(`process ended before printing "${prefix}"`);
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe('exactly-once RPC over gRPC', () => {
  it('5 clients x 200 increments between two processes, with duplicated and lost messages', async () => {
    const faults = ['--dup', '0.3', '--loss', '0.1'];
    const server = start(['--role', 'server', ...faults, '--seed', '11']);
    const port = (await firstLine(server, 'listening ')).split(' ')[1];
    const client = start(['--role', 'client', '--server', `127.0.0.1:${port}`, ...faults, '--seed', '12']);
    const report = JSON.parse(await firstLine(client, '{')) as {
      counter: number;
      clients: Array<{ outcomes: Array<[number, number]>; values: number[]; failures: number[] }>;
    };
    const [code] = (await once(client, 'exit')) as [number];
    expect(code).toBe(0);
    const clients = report.clients.map((c) => ({ ...c, outcomes: new Map(c.outcomes) }));
    expect(report.counter).toBe(1000);
    checkExactlyOnce(report.counter, clients, 200);
  });
});
