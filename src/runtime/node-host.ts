// Real runtime for one protocol role (DESIGN.md 1): real timers, a Storage
// adapter and a Transport. Inputs run the role synchronously; their effects
// pile up in the ready batch until the host flushes it: one synced storage
// write for every step since the last flush (group commit), then the
// messages and scans. Timers and Env.sendNow messages do not wait for the
// disk: they go out as the step ends. While a write is in flight, new steps
// keep collecting into the next batch, which flushes only after it; reads see
// both through the collector's overlay until their write completes.
import { type NodeFactory, type ProtocolNode, ReadyCollector } from '../core/env.js';
import { type Millis, type NodeId, millis } from '../core/ids.js';
import { Prng } from '../core/prng.js';
import { emptyState, type ScanRequest, type Storage, StorageCorruptionError } from '../core/storage.js';
import { assert } from '../core/assert.js';
import type { Transport } from '../core/transport.js';

export interface NodeHostOptions<M, T> {
  readonly id: NodeId;
  readonly factory: NodeFactory<M, T>;
  /** Left out for a role that keeps nothing (a client); it must then never persist. */
  readonly storage?: Storage;
  /** Small spaces read whole at start and handed to the factory. */
  readonly preload?: readonly string[];
  readonly transport: Transport<M>;
  /** Seed of the role's randomness; a random one by default. */
  readonly seed?: number;
  /** Called when the host cannot go on safely (a failed disk write, damaged storage); the default rethrows. */
  readonly onFatal?: (err: unknown) => void;
}

export interface HostStats {
  /** Synced storage writes (fsyncs) so far. */
  syncedWrites: number;
  /** Messages from the network dropped because the writes waiting for the disk were at their bound. */
  droppedMessages: number;
}

/**
 * Bytes of writes waiting for the disk (collected or being written) past
 * which messages from the network are dropped, like lost ones, until the disk
 * catches up: the network can deliver faster than LevelDB syncs, and every
 * accepted P2a or applied put is a write. Timers and scan results still run.
 */
export const MAX_UNFLUSHED_WRITE_BYTES = 64 * 1024 * 1024;

export class NodeHost<M, T> {
  readonly stats: HostStats = { syncedWrites: 0, droppedMessages: 0 };
  /** Bytes of the batch being written now. */
  private flushingBytes = 0;
  private readonly collector: ReadyCollector<M, T>;
  private role: ProtocolNode<M, T> | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private flushing: Promise<void> | undefined; // the flush under way, which close() waits for
  private flushQueued = false;
  private closed = false;
  private readonly started = performance.now();

  private constructor(private readonly options: NodeHostOptions<M, T>) {
    const rng = new Prng(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    const storage = options.storage;
    this.collector = new ReadyCollector<M, T>(
      options.id,
      () => this.now(),
      () => rng.next(),
      storage === undefined ? undefined : (space, key) => storage.getSync(space, key),
    );
  }

  static async start<M, T>(options: NodeHostOptions<M, T>): Promise<NodeHost<M, T>> {
    const host = new NodeHost(options);
    const stored = options.storage === undefined ? emptyState() : await options.storage.loadSpaces(options.preload ?? []);
    host.role = options.factory(host.collector, stored);
    host.sendAll(host.collector.takeUrgent());
    for (const { timer, afterMs } of host.collector.takeTimers()) host.arm(timer, afterMs);
    // Damage the storage finds by itself (a background check of its files) stops the node like damage under a read.
    options.storage?.onDamage?.((err) => host.fatal(err));
    options.transport.onReceive((from, m) => {
      if (host.flushingBytes + host.collector.pendingWriteBytes > MAX_UNFLUSHED_WRITE_BYTES) {
        host.stats.droppedMessages += 1;
        return;
      }
      host.input((r) => r.onMessage(from, m));
    });
    host.queueFlush();
    return host;
  }

  /** Runs one step of the role (a client call, say) and flushes its effects. */
  input(step: (role: ProtocolNode<M, T>) => void): void {
    if (this.closed || this.role === undefined) return;
    try {
      step(this.role);
    } catch (err) {
      // Damaged storage under a read: the role stopped half-way and must not take another step.
      if (!(err instanceof StorageCorruptionError)) throw err;
      this.fatal(err);
      return;
    }
    this.sendAll(this.collector.takeUrgent());
    for (const { timer, afterMs } of this.collector.takeTimers()) this.arm(timer, afterMs);
    this.queueFlush();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // A write under way finishes before the store closes (else LevelDB refuses its sync marker).
    await this.flushing;
    await this.options.transport.close();
    await this.options.storage?.close();
  }

  private now(): Millis {
    return millis(Math.floor(performance.now() - this.started));
  }

  private queueFlush(): void {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      if (this.flushing !== undefined) return; // the running flush loops until the batch is empty
      this.flushing = this.flush()
        .catch((err: unknown) => this.fatal(err))
        .finally(() => (this.flushing = undefined));
    });
  }

  private async flush(): Promise<void> {
    while (!this.closed && !this.collector.isEmpty()) {
      const batch = this.collector.take();
      const storage = this.options.storage;
      if (batch.writes.length > 0 || batch.mustSync) {
        assert(storage !== undefined, 'a role without storage persisted');
        this.flushingBytes = batch.writeBytes;
        await storage.write(batch.writes, { sync: batch.mustSync });
        this.flushingBytes = 0;
        if (batch.mustSync) this.stats.syncedWrites += 1;
      }
      this.collector.settled(batch.gen);
      if (this.closed) return;
      this.sendAll(batch.messages);
      for (const { timer, afterMs } of batch.timers) this.arm(timer, afterMs);
      if (batch.scans.length > 0 || batch.releases.length > 0) {
        assert(storage !== undefined, 'a role without storage scanned');
        for (const request of batch.scans) this.startScan(storage, request);
        for (const id of batch.releases) storage.releaseSnapshot(id);
      }
    }
  }

  private startScan(storage: Storage, request: ScanRequest): void {
    storage.scan(request).then(
      (result) => this.input((r) => r.onScanned?.(request, result)),
      (err: unknown) => {
        // A lost snapshot is the role's to handle; damaged data under it is not.
        if (err instanceof StorageCorruptionError) this.fatal(err);
        else this.input((r) => r.onScanned?.(request, undefined));
      },
    );
  }

  private sendAll(messages: readonly { to: NodeId; message: M }[]): void {
    const byPeer = new Map<NodeId, M[]>();
    for (const { to, message } of messages) {
      if (to === this.options.id) {
        // To itself (a KV group asking the shard master's replica on the same node, say): delivered
        // here, on a later turn like any message, as the simulation does; transports reach other nodes only.
        setImmediate(() => this.input((r) => r.onMessage(to, message)));
        continue;
      }
      const list = byPeer.get(to);
      if (list === undefined) byPeer.set(to, [message]);
      else list.push(message);
    }
    for (const [to, list] of byPeer) this.options.transport.send(to, list);
  }

  private arm(timer: T, afterMs: Millis): void {
    const fire = () => this.input((r) => r.onTimer(timer));
    if (afterMs === 0) {
      // "Next step", not "in a millisecond" (setTimeout's floor).
      setImmediate(fire);
      return;
    }
    const handle = setTimeout(() => {
      this.timers.delete(handle);
      fire();
    }, afterMs);
    this.timers.add(handle);
  }

  private fatal(err: unknown): void {
    this.closed = true;
    if (this.options.onFatal) this.options.onFatal(err);
    else throw err;
  }
}
