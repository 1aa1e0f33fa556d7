// Lint: what the compiler cannot see. Floating promises and `any` are errors,
// and imports go down the layers only.
import tseslint from 'typescript-eslint';

// Import direction (DESIGN.md 4): a file under src/<layer> imports its own
// layer and the layers listed here, nothing else. cli sits on top: it drives
// the SDK (client) and starts servers (server). The SDK speaks the
// exactly-once layer (rpc) and kv, never Paxos, and never the server.
/** @type {Record<string, readonly string[]>} */
const MAY_IMPORT = {
  core: [],
  rpc: ['core'],
  paxos: ['rpc', 'core'],
  txn: ['paxos', 'rpc', 'core'],
  shardmaster: ['paxos', 'rpc', 'core'],
  kv: ['txn', 'shardmaster', 'paxos', 'rpc', 'core'],
  runtime: ['core'],
  sim: ['core'],
  client: ['kv', 'txn', 'shardmaster', 'rpc', 'runtime', 'core'],
  server: ['kv', 'txn', 'shardmaster', 'paxos', 'rpc', 'runtime', 'core'],
  cli: ['client', 'server', 'kv', 'txn', 'shardmaster', 'paxos', 'rpc', 'runtime', 'core'],
};
// Generated protobuf code (src/gen): only the layers with a wire codec or a gRPC edge.
const MAY_IMPORT_GEN = ['rpc', 'paxos', 'shardmaster', 'kv', 'client', 'server'];
const FOLDERS = [...Object.keys(MAY_IMPORT), 'gen'];

/**
 * no-restricted-imports for code whose relative imports of src/<folder> start with `up` (a regex).
 * @param {string} layer
 * @param {string} up
 * @param {string} who
 */
function layerImports(layer, up, who = `src/${layer}`) {
  const allowed = new Set([layer, ...(MAY_IMPORT[layer] ?? []), ...(MAY_IMPORT_GEN.includes(layer) ? ['gen'] : [])]);
  const patterns = FOLDERS.filter((f) => !allowed.has(f)).map((f) => ({
    regex: `^${up}${f}/`,
    message:
      f === 'gen'
        ? `${who} may not import generated protobuf code; only ${MAY_IMPORT_GEN.join(', ')} do (DESIGN.md 4).`
        : `${who} may not import src/${f}: imports go down the layers, ` +
          'cli -> client, server -> kv -> txn, shardmaster -> paxos -> rpc -> core; runtime, sim -> core (DESIGN.md 4).',
  }));
  return { 'no-restricted-imports': ['error', { patterns }] };
}

export default tseslint.config(
  { ignores: ['node_modules/', 'src/gen/', 'data/'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Synchronous adapters implement async ports; an await-less async method is fine there.
      '@typescript-eslint/require-await': 'off',
    },
  },
  // One block per layer; test/ and bench/ may import anything.
  ...Object.keys(MAY_IMPORT).map((layer) => ({
    files: [`src/${layer}/**/*.ts`],
    rules: layerImports(layer, '(\\.\\./)+'),
  })),
  // The package entry is the SDK's public face: it follows the client's rule.
  { files: ['src/index.ts'], rules: layerImports('client', '\\./', 'src/index.ts') },
);
