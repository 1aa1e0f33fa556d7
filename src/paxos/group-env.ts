// One group's view of its node's environment (DESIGN.md 2.2, many groups per
// process): a group's roles act as if they had the node to themselves, while
// everything they ask for goes to the node's one ready batch, tagged with the
// group. Sends and timers carry the group id; storage spaces get the group's
// prefix (`g<id>.<space>`), so groups share one LevelDB and one flush (one
// fsync covers every group's writes) without seeing each other's keys.
import { assert } from '../core/assert.js';
import type { Env } from '../core/env.js';
import { type GroupId, groupId, type Millis, type NodeId } from '../core/ids.js';
import type { ScanRequest, StorageWrite } from '../core/storage.js';

/** A message between two nodes: for the replica of `group` at the receiver. */
export interface NodeMessage<M> {
  readonly group: GroupId;
  readonly message: M;
}

/** A timer of one group's roles. */
export interface NodeTimer<T> {
  readonly group: GroupId;
  readonly timer: T;
}

const GROUP_SPACE = /^g(0|[1-9][0-9]*)\.(.+)$/;

/** The node-level name of `group`'s storage space `name`. */
export function groupSpace(group: GroupId, name: string): string {
  return `g${group}.${name}`;
}

/** The group and group-level name of a node-level space; undefined for a space of no group. */
export function parseGroupSpace(space: string): { readonly group: GroupId; readonly name: string } | undefined {
  const m = GROUP_SPACE.exec(space);
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? { group: groupId(n), name: m[2] } : undefined;
}

export class GroupEnv<M, T> implements Env<M, T> {
  constructor(
    private readonly node: Env<NodeMessage<M>, NodeTimer<T>>,
    readonly group: GroupId,
  ) {}

  get self(): NodeId {
    return this.node.self;
  }

  send(to: NodeId, message: M): void {
    this.node.send(to, { group: this.group, message });
  }

  sendNow(to: NodeId, message: M): void {
    this.node.sendNow(to, { group: this.group, message });
  }

  sendToGroup(group: GroupId, to: NodeId, message: M): void {
    this.node.send(to, { group, message });
  }

  setTimer(timer: T, afterMs: Millis): void {
    this.node.setTimer({ group: this.group, timer }, afterMs);
  }

  persist(...writes: StorageWrite[]): void {
    this.node.persist(...writes.map((w) => this.tag(w)));
  }

  persistUnsynced(...writes: StorageWrite[]): void {
    this.node.persistUnsynced(...writes.map((w) => this.tag(w)));
  }

  syncBeforeSending(): void {
    this.node.syncBeforeSending();
  }

  read(space: string, key: string): Uint8Array | undefined {
    return this.node.read(groupSpace(this.group, space), key);
  }

  openSnapshot(): number {
    return this.node.openSnapshot(); // a snapshot covers the node's whole store: the group scans only its own spaces
  }

  releaseSnapshot(id: number): void {
    this.node.releaseSnapshot(id);
  }

  scan(request: ScanRequest): void {
    this.node.scan({ ...request, space: groupSpace(this.group, request.space) });
  }

  now(): Millis {
    return this.node.now();
  }

  random(): number {
    return this.node.random();
  }

  private tag(w: StorageWrite): StorageWrite {
    assert(w.op !== 'snapshot', 'snapshots are opened with openSnapshot()');
    return { ...w, space: groupSpace(this.group, w.space) };
  }
}
