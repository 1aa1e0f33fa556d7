// src/gen must be exactly what `npm run proto` makes from proto/: regenerate
// into a temp dir and compare file by file.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), 'shardpax-proto-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function files(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else found.set(relative(dir, p), readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return found;
}

it('generated code matches proto/ (run `npm run proto` if this fails)', () => {
  execFileSync(join(root, 'node_modules/.bin/buf'), ['generate', '-o', out], { cwd: root });
  const fresh = files(join(out, 'src/gen'));
  const committed = files(join(root, 'src/gen'));
  expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
  for (const [name, text] of fresh) expect(committed.get(name), name).toBe(text);
});
