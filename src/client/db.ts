// The SDK's entry: connect() to a cluster, then get/put/delete. Every
// operation goes to the KV group that owns its key's shard (per the shard
// master's latest config, reloaded when a group answers WrongGroup) through
// that shard's exactly-once session (retried until answered, never applied
// twice), with up to `window` operations in flight per shard.
import { decodeKvResult, encodeKvCommand } from '../kv/codec.js';
import { checkCommand, KvInputError } from '../kv/limits.js';
import type { KvCommand } from '../kv/messages.js';
import { checkConnectOptions, checkKey, checkValue } from './arguments.js';
import { type ConnectOptions, GroupClient } from './group-client.js';

export type { ConnectOptions };

export class Db {
  private constructor(private readonly client: GroupClient) {}

  /** @internal use connect() */
  static async open(options: ConnectOptions): Promise<Db> {
    return new Db(await GroupClient.connectRouted(options));
  }

  // The calls are async so that a wrong argument (checkKey, checkValue) is a rejection, like every other failure.
  /** Stores `value` (a string as UTF-8) under `key`. */
  async put(key: string, value: string | Uint8Array): Promise<void> {
    await this.run({ kind: 'put', key: checkKey('put', key), value: checkValue('put', value) });
  }

  /** The bytes stored under `key`, or undefined when there are none. */
  async get(key: string): Promise<Uint8Array | undefined> {
    return this.run({ kind: 'get', key: checkKey('get', key) });
  }

  async delete(key: string): Promise<void> {
    await this.run({ kind: 'delete', key: checkKey('delete', key) });
  }

  /** Rejects what is still in flight and releases the connections. */
  close(): Promise<void> {
    return this.client.close();
  }

  private async run(command: KvCommand): Promise<Uint8Array | undefined> {
    checkCommand(command); // bad input fails here, before it costs a round trip
    const read = command.kind === 'get';
    const what = `${command.kind} ${JSON.stringify(command.key)}`;
    const r = decodeKvResult(await this.client.submit({ command: encodeKvCommand(command), read, what, key: command.key }));
    switch (r.kind) {
      case 'value':
        return r.value;
      case 'done':
        return undefined;
      case 'error':
        throw new KvInputError({ code: r.code, message: r.message });
    }
  }
}

/**
 * Connects to a cluster. Rejects with ClusterUnreachableError when no server
 * answers; servers down at this moment are still used once they return.
 */
export async function connect(options: ConnectOptions): Promise<Db> {
  checkConnectOptions(options);
  return Db.open(options);
}
