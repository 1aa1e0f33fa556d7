// Helpers the real-process tests share: polling until a condition holds, and
// server tuning (SHARDPAX_TUNING, read by every server LocalCluster starts)
// set for one test file and put back after it, and running the CLI.
import { execFile } from 'node:child_process';
import { sleep } from '../../src/cli/local-cluster.js';

/** Polls `check` every `everyMs` until it holds; throws after `timeoutMs`, naming `what`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** Sets SHARDPAX_TUNING for servers started from now on; the returned function restores what was there. */
export function setServerTuning(tuning: Record<string, number>): () => void {
  const saved = process.env.SHARDPAX_TUNING;
  process.env.SHARDPAX_TUNING = JSON.stringify(tuning);
  return () => {
    if (saved === undefined) delete process.env.SHARDPAX_TUNING;
    else process.env.SHARDPAX_TUNING = saved;
  };
}

const BIN = new URL('../../bin/shardpax.mjs', import.meta.url).pathname;

/** Runs `shardpax <args>` to its end (at most 30 s): its exit code (-1 when killed) and output. */
export function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}
