// The SDK's entry: connect() to a cluster, then get/put/delete. Every
// operation travels through one exactly-once session (retried until
// answered, never applied twice) with up to `window` operations in flight.
import { randomUUID } from 'node:crypto';
import { assert } from '../core/assert.js';
import type { Env, ProtocolNode } from '../core/env.js';
import { millis, type NodeId, nodeId } from '../core/ids.js';
import { decodeKvResult, encodeKvCommand } from '../kv/codec.js';
import { checkCommand, KvInputError } from '../kv/limits.js';
import type { KvCommand } from '../kv/messages.js';
import { ClientSession, type Outcome } from '../rpc/client-session.js';
import type { RpcMessage, RpcTimer } from '../rpc/messages.js';
import { ClusterConfigError, loadClusterConfig } from '../runtime/cluster-config.js';
import { NodeHost } from '../runtime/node-host.js';
import { fetchStatus } from './admin.js';
import { checkConnectOptions, checkKey, checkValue } from './arguments.js';
import {
  ClientClosedError,
  ClusterUnreachableError,
  OperationTimeoutError,
  SessionExpiredError,
  type ShardpaxError,
  WrongClusterError,
} from './errors.js';
import { UnaryClientTransport } from './unary-transport.js';

export interface ConnectOptions {
  /** Path of a cluster file (as `shardpax dev` writes); or give `endpoints` (not both). */
  readonly cluster?: string;
  /** host:port of the servers. */
  readonly endpoints?: readonly string[];
  /**
   * The cluster the servers must belong to (every call names it; a server of
   * another cluster refuses it with WrongClusterError). With `cluster`, the
   * file's id (giving another is an error); with `endpoints` and no
   * `clusterId`, the one the servers name at connect(), which must agree.
   */
  readonly clusterId?: string;
  /** How long one operation may take before it rejects (default 10 s). */
  readonly timeoutMs?: number;
  /** How long connect() looks for a live server (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Operations in flight at once (default 64). */
  readonly window?: number;
}

interface Waiter {
  readonly command: KvCommand;
  readonly resolve: (r: Uint8Array | undefined) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** A ProtocolNode that owns one client session. */
class SessionNode implements ProtocolNode<RpcMessage, RpcTimer> {
  readonly session: ClientSession;
  constructor(env: Env<RpcMessage, RpcTimer>, servers: readonly NodeId[], window: number, onOutcome: (t: number, o: Outcome) => void) {
    this.session = new ClientSession(env, { servers, retryMs: millis(500), window, timerOwner: 0 }, onOutcome);
  }
  onMessage(_from: NodeId, m: RpcMessage): void {
    if (m.type === 'ClientResult') this.session.onResult(m.result);
  }
  onTimer(t: RpcTimer): void {
    if (t.type === 'SessionRetry') this.session.onTimer(t);
  }
}

export class Db {
  private readonly waiters = new Map<number, Waiter>();
  private closed = false;
  /** Set once a server said it belongs to another cluster: every later call rejects with it. */
  private refused: WrongClusterError | undefined;
  private hostClosed: Promise<void> | undefined;
  // Set once by open(): the host builds the node, whose outcomes call back into this Db.
  private host!: NodeHost<RpcMessage, RpcTimer>;
  private node!: SessionNode;

  private constructor(private readonly timeoutMs: number) {}

  /** @internal use connect() */
  static async open(
    endpoints: ReadonlyMap<NodeId, string>,
    order: readonly NodeId[],
    clusterId: string,
    o: ConnectOptions,
  ): Promise<Db> {
    const db = new Db(o.timeoutMs ?? 10_000);
    db.host = await NodeHost.start<RpcMessage, RpcTimer>({
      id: nodeId(`client-${randomUUID().slice(0, 8)}`),
      factory: (env) => (db.node = new SessionNode(env, order, o.window ?? 64, (t, out) => db.complete(t, out))),
      transport: new UnaryClientTransport(endpoints, 2_000, clusterId, (err) => db.wrongCluster(err)),
    });
    return db;
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
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [ticket, w] of this.waiters) this.fail(ticket, w, new ClientClosedError('client closed', w.command.kind !== 'get'));
    await this.stopHost();
  }

  private run(command: KvCommand): Promise<Uint8Array | undefined> {
    if (this.closed) return Promise.reject(new ClientClosedError('client is closed', false));
    if (this.refused !== undefined) return Promise.reject(this.refused);
    try {
      checkCommand(command); // bad input fails here, before it costs a round trip
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return new Promise((resolve, reject) => {
      let ticket = -1;
      this.host.input(() => {
        const bytes = encodeKvCommand(command);
        // A get needs no place in the exactly-once table: a retry just reads again.
        ticket = command.kind === 'get' ? this.node.session.read(bytes) : this.node.session.submit(bytes);
      });
      if (ticket < 0) {
        // The host stopped itself (a failed disk write): nothing was sent.
        reject(new ClientClosedError('client stopped after an internal failure', false));
        return;
      }
      const timer = setTimeout(() => {
        const w = this.waiters.get(ticket);
        const writes = command.kind !== 'get';
        if (w !== undefined) {
          const what = `${command.kind} ${JSON.stringify(command.key)} timed out: no answer within ${this.timeoutMs} ms (are most of the cluster's servers up?)`;
          // The session keeps the write and may still deliver it: say so, so nobody reads "timed out" as "failed".
          this.fail(ticket, w, new OperationTimeoutError(writes ? `${what}; the write may still take effect` : what, writes));
        }
      }, this.timeoutMs);
      this.waiters.set(ticket, { command, resolve, reject, timer });
    });
  }

  private complete(ticket: number, outcome: Outcome): void {
    const w = this.waiters.get(ticket);
    if (w === undefined) return; // timed out already
    this.waiters.delete(ticket);
    clearTimeout(w.timer);
    if (!outcome.ok) {
      w.reject(new SessionExpiredError(`session expired during ${w.command.kind}: outcome unknown`));
      return;
    }
    const r = decodeKvResult(outcome.result);
    switch (r.kind) {
      case 'value':
        w.resolve(r.value);
        return;
      case 'done':
        w.resolve(undefined);
        return;
      case 'error':
        w.reject(new KvInputError({ code: r.code, message: r.message }));
        return;
    }
  }

  /** A server belongs to another cluster: this client's endpoints are wrong, so it stops for good. */
  private wrongCluster(err: WrongClusterError): void {
    if (this.refused !== undefined || this.closed) return;
    this.refused = new WrongClusterError(err.message, false, err.nodeClusterId);
    for (const [ticket, w] of this.waiters) {
      this.fail(ticket, w, new WrongClusterError(err.message, w.command.kind !== 'get', err.nodeClusterId));
    }
    this.stopHost().catch(() => {}); // only releases connections; close() awaits the same promise
  }

  private stopHost(): Promise<void> {
    return (this.hostClosed ??= this.host.close());
  }

  private fail(ticket: number, w: Waiter, err: ShardpaxError): void {
    this.waiters.delete(ticket);
    clearTimeout(w.timer);
    w.reject(err);
  }
}

/**
 * Connects to a cluster. Rejects with ClusterUnreachableError when no server
 * answers; servers down at this moment are still used once they return.
 */
export async function connect(options: ConnectOptions): Promise<Db> {
  checkConnectOptions(options);
  const { servers, clusterId } = resolveEndpoints(options);
  const timeout = options.connectTimeoutMs ?? 5_000;
  const statuses = await Promise.allSettled(servers.map((s) => fetchStatus(s.address, timeout, clusterId)));
  const endpoints = new Map<NodeId, string>();
  let leader: NodeId | undefined;
  const reasons: string[] = [];
  const named = new Map<string, string>(); // cluster id -> an address that names it
  statuses.forEach((s, i) => {
    const server = servers[i];
    assert(server !== undefined);
    if (s.status === 'rejected') {
      if (s.reason instanceof WrongClusterError) throw s.reason;
      reasons.push(s.reason instanceof Error ? s.reason.message : String(s.reason));
      endpoints.set(server.id ?? nodeId(`endpoint-${i}`), server.address);
      return;
    }
    const id = nodeId(s.value.node);
    endpoints.set(id, server.address);
    named.set(s.value.clusterId, server.address);
    if (s.value.leader) leader = id;
  });
  if (reasons.length === servers.length) {
    throw new ClusterUnreachableError(`no server answered within ${timeout} ms: ${reasons.join('; ')}`);
  }
  const [first, second] = named.keys();
  assert(first !== undefined);
  if (second !== undefined) {
    const which = [...named].map(([c, address]) => `${address} is in cluster ${c}`).join(', ');
    throw new WrongClusterError(`the endpoints belong to different clusters: ${which}`, false, second);
  }
  const order = [...endpoints.keys()].sort((a, b) => (a === leader ? -1 : b === leader ? 1 : 0));
  return Db.open(endpoints, order, clusterId ?? first, options);
}

function resolveEndpoints(o: ConnectOptions): { servers: Array<{ id?: NodeId; address: string }>; clusterId: string | undefined } {
  if (o.endpoints !== undefined && o.endpoints.length > 0) {
    return { servers: o.endpoints.map((address) => ({ address })), clusterId: o.clusterId };
  }
  const cluster = loadClusterConfig(o.cluster ?? 'data/cluster.json');
  if (o.clusterId !== undefined && o.clusterId !== cluster.clusterId) {
    throw new ClusterConfigError(`clusterId ${o.clusterId} was given, but the cluster file ${cluster.path} is cluster ${cluster.clusterId}`);
  }
  const servers = cluster.groups.flatMap((g) => g.nodes.map((n) => ({ id: n.id, address: n.address })));
  return { servers, clusterId: cluster.clusterId };
}
