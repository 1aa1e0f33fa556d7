#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node
// The `shardpax` command: runs the TypeScript CLI through tsx's loader. The
// shebang caps glibc's malloc arenas at 2, which keeps a server's RSS far lower
// with large values (src/cli/local-cluster.ts serverEnv says why).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
