// Many groups on one node (DESIGN.md 2.2): the GroupMux hands each group a
// view of the node's one environment. Checked here: sends, timers, writes,
// reads and scans are tagged with (or prefixed by) the group and come back to
// it; a message for a group the node does not host is counted and dropped;
// each group sees only its own preloaded spaces; and in a real NodeHost, two
// groups' writes of one flush make one synced write.
import { describe, expect, it } from 'vitest';
import { ReadyCollector, type Env, type ProtocolNode } from '../src/core/env.js';
import { type GroupId, groupId, millis, type NodeId, nodeId } from '../src/core/ids.js';
import { put, type ScanRequest, type ScanResult, type StorageWrite, type StoredState } from '../src/core/storage.js';
import type { Transport } from '../src/core/transport.js';
import type { NodeMessage, NodeTimer } from '../src/paxos/group-env.js';
import { GroupMux, groupSpaces } from '../src/paxos/group-mux.js';
import { NodeHost } from '../src/runtime/node-host.js';
import { MemoryStorage } from '../src/sim/memory-storage.js';

const n1 = nodeId('n1');
const n2 = nodeId('n2');
const g1 = groupId(1);
const g2 = groupId(2);
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

/** A group's role that does what each message names, and records what reaches it. */
class Recorder implements ProtocolNode<string, string> {
  readonly seen: string[] = [];
  constructor(
    readonly env: Env<string, string>,
    readonly stored: StoredState,
  ) {}

  onMessage(from: NodeId, m: string): void {
    this.seen.push(`message ${m} from ${from}`);
    if (m.startsWith('persist ')) this.env.persist(put('data', 'k', bytes(m.slice('persist '.length))));
    if (m === 'ping') {
      this.env.send(from, 'pong');
      this.env.setTimer('later', millis(5));
    }
    if (m === 'scan') this.env.scan({ snapshot: this.env.openSnapshot(), space: 'data', gte: '', maxBytes: 100 });
  }

  onTimer(t: string): void {
    this.seen.push(`timer ${t}`);
  }

  onScanned(request: ScanRequest, result: ScanResult | undefined): void {
    this.seen.push(`scanned ${request.space}: ${result?.entries.map(([k, v]) => `${k}=${text(v)}`).join(',')}`);
  }
}

type Mux = GroupMux<string, string>;

function build(env: Env<NodeMessage<string>, NodeTimer<string>>, stored: StoredState, roles: Map<GroupId, Recorder>): Mux {
  const groups = [g1, g2].map((id) => ({
    id,
    factory: (e: Env<string, string>, s: StoredState) => {
      const r = new Recorder(e, s);
      roles.set(id, r);
      return r;
    },
  }));
  return new GroupMux(env, groups, stored);
}

describe('GroupMux', () => {
  it('tags what each group asks for, routes what comes back to it, and drops messages for groups it does not host', () => {
    const storage = new MemoryStorage();
    const collector = new ReadyCollector<NodeMessage<string>, NodeTimer<string>>(
      n1,
      () => millis(0),
      () => 0.5,
      (space, key) => storage.getSync(space, key),
    );
    const roles = new Map<GroupId, Recorder>();
    const mux = build(collector, new Map(), roles);
    const role = (g: GroupId) => roles.get(g) ?? expect.unreachable();
    const drain = () => {
      const b = collector.take();
      storage.writeSync(b.writes, { sync: b.mustSync });
      collector.settled(b.gen);
      return b;
    };

    mux.onMessage(n2, { group: g1, message: 'persist one' });
    mux.onMessage(n2, { group: g2, message: 'persist two' });
    mux.onMessage(n2, { group: g2, message: 'ping' });
    // Before the flush each group reads its own write through the overlay, and only its own.
    expect(text(role(g1).env.read('data', 'k'))).toBe('one');
    expect(text(role(g2).env.read('data', 'k'))).toBe('two');
    const b = drain();
    expect(b.mustSync).toBe(true);
    expect(b.writes.map((w: StorageWrite) => (w.op === 'put' ? `${w.space}/${w.key}=${text(w.value)}` : w.op))).toEqual([
      'g1.data/k=one',
      'g2.data/k=two',
    ]);
    expect(b.messages).toEqual([{ to: n2, message: { group: g2, message: 'pong' } }]);
    expect(b.timers).toEqual([{ timer: { group: g2, timer: 'later' }, afterMs: 5 }]);
    expect(text(role(g1).env.read('data', 'k'))).toBe('one'); // from the disk now

    mux.onTimer({ group: g2, timer: 'later' });
    mux.onMessage(n2, { group: g1, message: 'scan' });
    const scan = drain().scans[0] ?? expect.unreachable();
    expect(scan.space).toBe('g1.data');
    mux.onScanned(scan, storage.scanSync(scan));
    expect(role(g1).seen).toEqual(['message persist one from n2', 'message scan from n2', 'scanned data: k=one']);
    expect(role(g2).seen).toEqual(['message persist two from n2', 'message ping from n2', 'timer later']);

    mux.onMessage(n2, { group: groupId(9), message: 'persist stray' });
    expect(Object.fromEntries(mux.invalid.byReason())).toEqual({ 'unknown-group': 1 });
    expect(mux.invalid.latest?.detail).toBe('a message for group 9 from n2, which this node does not host');
    expect(collector.isEmpty()).toBe(true);
  });

  it("hands each group only its own preloaded spaces, under their own names", () => {
    const storage = new MemoryStorage();
    storage.writeSync([put('g1.small', 'a', bytes('1')), put('g2.small', 'b', bytes('2')), put('g3.small', 'c', bytes('3'))], { sync: true });
    const roles = new Map<GroupId, Recorder>();
    const collector = new ReadyCollector<NodeMessage<string>, NodeTimer<string>>(n1, () => millis(0), () => 0.5);
    build(collector, storage.loadSpacesSync(groupSpaces([g1, g2, groupId(3)], ['small'])), roles);
    const keys = (g: GroupId) => [...(roles.get(g)?.stored ?? new Map<string, ReadonlyMap<string, Uint8Array>>())].map(([s, m]) => `${s}:${[...m.keys()].join()}`);
    expect(keys(g1)).toEqual(['small:a']);
    expect(keys(g2)).toEqual(['small:b']);
  });
});

/** A transport whose messages the test delivers by hand. */
class HandTransport implements Transport<NodeMessage<string>> {
  private handler: (from: NodeId, m: NodeMessage<string>) => void = () => {};
  send(): void {}
  onReceive(handler: (from: NodeId, m: NodeMessage<string>) => void): void {
    this.handler = handler;
  }
  deliver(from: NodeId, m: NodeMessage<string>): void {
    this.handler(from, m);
  }
  async close(): Promise<void> {}
}

/** Storage that records every write call. */
class CountingStorage extends MemoryStorage {
  readonly calls: Array<{ spaces: string[]; sync: boolean }> = [];
  override write(writes: readonly StorageWrite[], options: { readonly sync: boolean }): Promise<void> {
    this.calls.push({ spaces: writes.flatMap((w) => (w.op === 'put' ? [w.space] : [])), sync: options.sync });
    return super.write(writes, options);
  }
}

describe('NodeHost with a GroupMux', () => {
  it("makes one synced write of two groups' writes in one flush", async () => {
    const storage = new CountingStorage();
    const transport = new HandTransport();
    const roles = new Map<GroupId, Recorder>();
    const host = await NodeHost.start<NodeMessage<string>, NodeTimer<string>>({
      id: n1,
      factory: (env, stored) => build(env, stored, roles),
      storage,
      transport,
    });
    await new Promise((r) => setImmediate(r)); // whatever start queued is flushed
    const before = host.stats.syncedWrites;
    transport.deliver(n2, { group: g1, message: 'persist one' });
    transport.deliver(n2, { group: g2, message: 'persist two' });
    await new Promise((r) => setTimeout(r, 20));
    expect(host.stats.syncedWrites - before).toBe(1);
    expect(storage.calls).toEqual([{ spaces: ['g1.data', 'g2.data'], sync: true }]);
    expect(text(storage.getSync('g1.data', 'k'))).toBe('one');
    expect(text(storage.getSync('g2.data', 'k'))).toBe('two');
    await host.close();
  });
});
