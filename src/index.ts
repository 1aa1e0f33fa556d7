// The public entry of the package: `import { connect } from 'shardpax'`.
export { connect, Db, type ConnectOptions } from './client/db.js';
export { connectShardMaster, ShardMasterAdmin } from './client/shard-master-admin.js';
export {
  ClientClosedError,
  ClusterUnreachableError,
  InvalidArgumentError,
  KvInputError,
  OperationTimeoutError,
  SessionExpiredError,
  ShardMasterError,
  ShardpaxError,
  WrongClusterError,
} from './client/errors.js';
export { ClusterConfigError } from './runtime/cluster-config.js';
export type { ShardConfig } from './shardmaster/config.js';
export { MAX_KEY_BYTES, MAX_VALUE_BYTES } from './kv/limits.js';
