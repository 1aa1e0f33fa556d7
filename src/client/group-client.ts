// A client of a cluster's replica groups: finds the servers (in the cluster
// file, or by asking the endpoints), then carries commands through
// exactly-once sessions (retried until answered, never applied twice) with up
// to `window` in flight per session: one session to one group (connect, for
// ShardMasterAdmin and group 0), or one per shard through the shard router
// (connectRouted, for Db and the KV groups: src/client/shard-router.ts).
// Commands and results are the group application's bytes; Db and
// ShardMasterAdmin give them meaning.
import { randomUUID } from 'node:crypto';
import { assert } from '../core/assert.js';
import type { Env, ProtocolNode } from '../core/env.js';
import { type GroupId, millis, type NodeId, nodeId, shardId } from '../core/ids.js';
import { ClientSession, type Outcome } from '../rpc/client-session.js';
import type { RpcMessage } from '../rpc/messages.js';
import { type ClusterConfig, ClusterConfigError, loadClusterConfig, SHARD_MASTER_GROUP } from '../runtime/cluster-config.js';
import { decodeShardMasterResult, encodeShardMasterCommand } from '../shardmaster/codec.js';
import { type KeySharder, loadKeySharder } from '../shardmaster/key-shard.js';
import { NodeHost } from '../runtime/node-host.js';
import { fetchStatus, type NodeStatus } from './admin.js';
import {
  ClientClosedError,
  ClusterUnreachableError,
  OperationTimeoutError,
  SessionExpiredError,
  type ShardpaxError,
  WrongClusterError,
} from './errors.js';
import { type GroupTagged, groupTaggedEnv, type RouterTimer, ShardRouter } from './shard-router.js';
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

/** Which group to talk to: from the cluster file, or from what the endpoints host. */
export interface GroupChoice {
  fromFile(cluster: ClusterConfig): GroupId;
  /** Undefined when no endpoint that answered hosts a suitable group. */
  fromStatuses(statuses: readonly NodeStatus[]): GroupId | undefined;
}

/** One command: its bytes, whether it only reads, and what it is, for error messages ("put \"k\""). */
export interface GroupCall {
  readonly command: Uint8Array;
  readonly read: boolean;
  readonly what: string;
  /** The key it is about: a routed client sends it to the group that owns the key's shard. */
  readonly key?: string;
}

interface Waiter {
  readonly call: GroupCall;
  readonly resolve: (r: Uint8Array) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

const RETRY_MS = millis(500);

/** The node a client's host runs: takes calls, returns tickets its outcomes will carry. */
interface CallNode extends ProtocolNode<GroupTagged<RpcMessage>, RouterTimer> {
  submit(call: GroupCall): number;
}

/** One client session to one group. */
class SessionNode implements CallNode {
  private readonly session: ClientSession;
  constructor(
    env: Env<GroupTagged<RpcMessage>, RouterTimer>,
    group: GroupId,
    servers: readonly NodeId[],
    window: number,
    onOutcome: (t: number, o: Outcome) => void,
  ) {
    const options = { servers, retryMs: RETRY_MS, window, timerOwner: 0, shard: shardId(0) };
    this.session = new ClientSession(groupTaggedEnv(env, () => group), options, onOutcome);
  }
  submit(call: GroupCall): number {
    // A read needs no place in the exactly-once table: a retry just reads again.
    return call.read ? this.session.read(call.command) : this.session.submit(call.command);
  }
  onMessage(_from: NodeId, m: GroupTagged<RpcMessage>): void {
    if (m.message.type === 'ClientResult') this.session.onResult(m.message.result);
  }
  onTimer(t: RouterTimer): void {
    if (t.timer.type === 'SessionRetry') this.session.onTimer(t.timer);
  }
}

/** Sessions per shard, routed by the shard master's config. */
class RouterNode implements CallNode {
  private readonly router: ShardRouter;
  constructor(
    env: Env<GroupTagged<RpcMessage>, RouterTimer>,
    shardMaster: readonly NodeId[],
    private readonly sharder: KeySharder,
    window: number,
    onOutcome: (t: number, o: Outcome) => void,
  ) {
    this.router = new ShardRouter(env, { shardMaster, retryMs: RETRY_MS, window }, onOutcome);
  }
  submit(call: GroupCall): number {
    assert(call.key !== undefined, 'a routed call names its key');
    return this.router.submit(this.sharder.shardOf(call.key), call.command, call.read);
  }
  onMessage(from: NodeId, m: GroupTagged<RpcMessage>): void {
    this.router.onMessage(from, m);
  }
  onTimer(t: RouterTimer): void {
    this.router.onTimer(t);
  }
}

export class GroupClient {
  private readonly waiters = new Map<number, Waiter>();
  private closed = false;
  /** Set once a server said it belongs to another cluster: every later call rejects with it. */
  private refused: WrongClusterError | undefined;
  private hostClosed: Promise<void> | undefined;
  // Set once by open(): the host builds the node, whose outcomes call back into this client.
  private host!: NodeHost<GroupTagged<RpcMessage>, RouterTimer>;
  private node!: CallNode;

  private constructor(private readonly timeoutMs: number) {}

  /**
   * Connects to every node and routes each call by its key's shard. Rejects with
   * ClusterUnreachableError when no server answers (with endpoints: when none
   * hosts the shard master); servers down at this moment are still used once they return.
   */
  static async connectRouted(options: ConnectOptions): Promise<GroupClient> {
    const { servers, clusterId, file } = resolveEndpoints(options);
    const statuses = await askStatuses(servers, options.connectTimeoutMs ?? 5_000, clusterId);
    if (file !== undefined) {
      const endpoints = new Map(file.nodes.map((n) => [n.id, n.address]));
      const shardMaster = file.groups.find((g) => g.id === SHARD_MASTER_GROUP)?.nodes ?? [];
      const sharder = await loadKeySharder(file.shards);
      return GroupClient.open(endpoints, file.clusterId, options, (env, window, done) => new RouterNode(env, shardMaster, sharder, window, done));
    }
    // Bare endpoints: the nodes name themselves, and the shard master tells the shard count.
    const endpoints = new Map<NodeId, string>();
    const shardMaster: NodeId[] = [];
    statuses.forEach((s, i) => {
      const server = servers[i];
      assert(server !== undefined);
      if (s === undefined) return;
      endpoints.set(nodeId(s.node), server.address);
      if (s.groups.some((g) => g.group === SHARD_MASTER_GROUP)) shardMaster.push(nodeId(s.node));
    });
    if (shardMaster.length === 0) throw new ClusterUnreachableError('no server that answered hosts the shard master (group 0)');
    const admin = await GroupClient.connect(options, {
      fromFile: () => SHARD_MASTER_GROUP,
      fromStatuses: () => SHARD_MASTER_GROUP,
    });
    let shards: number;
    try {
      const r = decodeShardMasterResult(
        await admin.submit({ command: encodeShardMasterCommand({ kind: 'query', num: undefined }), read: true, what: 'query the shard count' }),
      );
      if (r.kind !== 'config') throw new ClusterUnreachableError(`the shard master answered a query with ${r.kind}`);
      shards = r.config.shards.length;
    } finally {
      await admin.close();
    }
    const sharder = await loadKeySharder(shards);
    const first = statuses.find((s) => s !== undefined);
    assert(first !== undefined);
    return GroupClient.open(endpoints, clusterId ?? first.clusterId, options, (env, window, done) => new RouterNode(env, shardMaster, sharder, window, done));
  }

  /**
   * Connects to the group `choice` picks. Rejects with ClusterUnreachableError
   * when no server answers; servers down at this moment are still used once they return.
   */
  static async connect(options: ConnectOptions, choice: GroupChoice): Promise<GroupClient> {
    const { servers: all, clusterId, file } = resolveEndpoints(options);
    // With a cluster file, only the group's own nodes are asked.
    const fileGroup = file === undefined ? undefined : choice.fromFile(file);
    const servers = fileGroup === undefined ? all : all.filter((s) => s.groups?.includes(fileGroup));
    const statuses = await askStatuses(servers, options.connectTimeoutMs ?? 5_000, clusterId);
    const answered: NodeStatus[] = [];
    const named = new Map<string, string>(); // cluster id -> an address that names it
    statuses.forEach((s, i) => {
      const server = servers[i];
      assert(server !== undefined);
      if (s === undefined) return;
      answered.push(s);
      named.set(s.clusterId, server.address);
    });
    const [first, second] = named.keys();
    assert(first !== undefined);
    if (second !== undefined) {
      const which = [...named].map(([c, address]) => `${address} is in cluster ${c}`).join(', ');
      throw new WrongClusterError(`the endpoints belong to different clusters: ${which}`, false, second);
    }
    const group = fileGroup ?? choice.fromStatuses(answered);
    if (group === undefined) {
      throw new ClusterUnreachableError(`no server that answered hosts a group to use (${answered.map((s) => `${s.node}: ${hostedGroups(s)}`).join('; ')})`);
    }
    const endpoints = new Map<NodeId, string>();
    let leader: NodeId | undefined;
    statuses.forEach((s, i) => {
      const server = servers[i];
      assert(server !== undefined);
      if (s === undefined) {
        // Silent for now: with a cluster file, a node of the group; with bare endpoints, maybe one.
        endpoints.set(server.id ?? nodeId(`endpoint-${i}`), server.address);
        return;
      }
      const replica = s.groups.find((g) => g.group === group);
      if (replica === undefined) return;
      const id = nodeId(s.node);
      endpoints.set(id, server.address);
      if (replica.leader) leader = id;
    });
    const order = [...endpoints.keys()].sort((a, b) => (a === leader ? -1 : b === leader ? 1 : 0));
    return GroupClient.open(endpoints, clusterId ?? first, options, (env, window, done) => new SessionNode(env, group, order, window, done));
  }

  private static async open(
    endpoints: ReadonlyMap<NodeId, string>,
    clusterId: string,
    o: ConnectOptions,
    makeNode: (env: Env<GroupTagged<RpcMessage>, RouterTimer>, window: number, onOutcome: (t: number, o: Outcome) => void) => CallNode,
  ): Promise<GroupClient> {
    const c = new GroupClient(o.timeoutMs ?? 10_000);
    c.host = await NodeHost.start<GroupTagged<RpcMessage>, RouterTimer>({
      id: nodeId(`client-${randomUUID().slice(0, 8)}`),
      factory: (env) => (c.node = makeNode(env, o.window ?? 64, (t, out) => c.complete(t, out))),
      transport: new UnaryClientTransport(endpoints, 2_000, clusterId, (err) => c.wrongCluster(err)),
    });
    return c;
  }

  /** Sends `call` to the group; resolves with the application's result bytes. */
  submit(call: GroupCall): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ClientClosedError('client is closed', false));
    if (this.refused !== undefined) return Promise.reject(this.refused);
    return new Promise((resolve, reject) => {
      let ticket = -1;
      this.host.input(() => {
        ticket = this.node.submit(call);
      });
      if (ticket < 0) {
        // The host stopped itself (a failed disk write): nothing was sent.
        reject(new ClientClosedError('client stopped after an internal failure', false));
        return;
      }
      const timer = setTimeout(() => {
        const w = this.waiters.get(ticket);
        if (w === undefined) return;
        const what = `${call.what} timed out: no answer within ${this.timeoutMs} ms (are most of the group's servers up?)`;
        // The session keeps the write and may still deliver it: say so, so nobody reads "timed out" as "failed".
        this.fail(ticket, w, new OperationTimeoutError(call.read ? what : `${what}; the write may still take effect`, !call.read));
      }, this.timeoutMs);
      this.waiters.set(ticket, { call, resolve, reject, timer });
    });
  }

  /** Rejects what is still in flight and releases the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [ticket, w] of this.waiters) this.fail(ticket, w, new ClientClosedError('client closed', !w.call.read));
    await this.stopHost();
  }

  private complete(ticket: number, outcome: Outcome): void {
    const w = this.waiters.get(ticket);
    if (w === undefined) return; // timed out already
    this.waiters.delete(ticket);
    clearTimeout(w.timer);
    if (outcome.ok) w.resolve(outcome.result);
    else w.reject(new SessionExpiredError(`session expired during ${w.call.what}: outcome unknown`));
  }

  /** A server belongs to another cluster: this client's endpoints are wrong, so it stops for good. */
  private wrongCluster(err: WrongClusterError): void {
    if (this.refused !== undefined || this.closed) return;
    this.refused = new WrongClusterError(err.message, false, err.nodeClusterId);
    for (const [ticket, w] of this.waiters) {
      this.fail(ticket, w, new WrongClusterError(err.message, !w.call.read, err.nodeClusterId));
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

interface Server {
  readonly id?: NodeId;
  readonly address: string;
  /** The groups it hosts, per the cluster file; unknown for a bare endpoint. */
  readonly groups?: readonly GroupId[];
}

/**
 * Every server's status, undefined for one that did not answer. Rejects with
 * WrongClusterError when one belongs to another cluster, and with
 * ClusterUnreachableError, saying why, when none answered.
 */
async function askStatuses(servers: readonly Server[], timeoutMs: number, clusterId: string | undefined): Promise<(NodeStatus | undefined)[]> {
  const settled = await Promise.allSettled(servers.map((s) => fetchStatus(s.address, timeoutMs, clusterId)));
  const reasons: string[] = [];
  const statuses = settled.map((s) => {
    if (s.status === 'fulfilled') return s.value;
    if (s.reason instanceof WrongClusterError) throw s.reason;
    reasons.push(s.reason instanceof Error ? s.reason.message : String(s.reason));
    return undefined;
  });
  if (reasons.length === servers.length) throw new ClusterUnreachableError(`no server answered within ${timeoutMs} ms: ${reasons.join('; ')}`);
  return statuses;
}

function resolveEndpoints(o: ConnectOptions): { servers: Server[]; clusterId: string | undefined; file: ClusterConfig | undefined } {
  if (o.endpoints !== undefined && o.endpoints.length > 0) {
    return { servers: o.endpoints.map((address) => ({ address })), clusterId: o.clusterId, file: undefined };
  }
  const cluster = loadClusterConfig(o.cluster ?? 'data/cluster.json');
  if (o.clusterId !== undefined && o.clusterId !== cluster.clusterId) {
    throw new ClusterConfigError(`clusterId ${o.clusterId} was given, but the cluster file ${cluster.path} is cluster ${cluster.clusterId}`);
  }
  const servers = cluster.nodes.map((n) => ({
    id: n.id,
    address: n.address,
    groups: cluster.groups.filter((g) => g.nodes.includes(n.id)).map((g) => g.id),
  }));
  return { servers, clusterId: cluster.clusterId, file: cluster };
}

function hostedGroups(s: NodeStatus): string {
  return s.groups.length === 0 ? 'no group' : `groups ${s.groups.map((g) => g.group).join(', ')}`;
}
