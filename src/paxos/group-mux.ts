// A node hosting one replica of several groups (DESIGN.md 2.2; Spanner's
// spanservers, multi-raft): the node's one protocol role, which owns each
// group's role and hands it a GroupEnv, so that all of them share the node's
// one ready batch (one flush, one fsync), one timer mechanism and one stream
// per peer node. Incoming messages, timers and scan results go to the group
// they name.
//
// A message for a group this node does not host comes from the network: it is
// counted in `invalid` and dropped, never asserted on. Timers and scans are
// the node's own, so one for an unknown group is a bug. Each group's own door
// (validate.ts) then checks its sender against THAT group's members.
import { assert } from '../core/assert.js';
import { DropCounter } from '../core/drop-counter.js';
import type { Env, NodeFactory, ProtocolNode } from '../core/env.js';
import type { GroupId, NodeId } from '../core/ids.js';
import type { ScanRequest, ScanResult, StoredState } from '../core/storage.js';
import { GroupEnv, groupSpace, type NodeMessage, type NodeTimer, parseGroupSpace } from './group-env.js';

/** A group placed on this node and how to build its role (at start and after every crash). */
export interface HostedGroup<M, T> {
  readonly id: GroupId;
  readonly factory: NodeFactory<M, T>;
}

/** The node-level names of `names`, for each group: what the node's storage opens (or preloads). */
export function groupSpaces(groups: readonly GroupId[], names: readonly string[]): string[] {
  return groups.flatMap((g) => names.map((name) => groupSpace(g, name)));
}

export class GroupMux<M, T> implements ProtocolNode<NodeMessage<M>, NodeTimer<T>> {
  /** Messages for a group this node does not host. */
  readonly invalid = new DropCounter();
  private readonly roles = new Map<GroupId, ProtocolNode<M, T>>();

  constructor(env: Env<NodeMessage<M>, NodeTimer<T>>, groups: readonly HostedGroup<M, T>[], stored: StoredState) {
    assert(new Set(groups.map((g) => g.id)).size === groups.length, 'a group hosted twice');
    for (const g of groups) this.roles.set(g.id, g.factory(new GroupEnv(env, g.id), ownSpaces(stored, g.id)));
  }

  /** Group `group`'s role on this node, or undefined if it hosts none. */
  role(group: GroupId): ProtocolNode<M, T> | undefined {
    return this.roles.get(group);
  }

  /** The groups this node hosts, in ascending order. */
  groups(): GroupId[] {
    return [...this.roles.keys()].sort((a, b) => a - b);
  }

  onMessage(from: NodeId, m: NodeMessage<M>): void {
    const role = this.roles.get(m.group);
    if (role === undefined) {
      this.invalid.count('unknown-group', `a message for group ${m.group} from ${from}, which this node does not host`);
      return;
    }
    role.onMessage(from, m.message);
  }

  onTimer(t: NodeTimer<T>): void {
    const role = this.roles.get(t.group);
    assert(role !== undefined, `a timer of group ${t.group}, which this node does not host`);
    role.onTimer(t.timer);
  }

  onScanned(request: ScanRequest, result: ScanResult | undefined): void {
    const at = parseGroupSpace(request.space);
    const role = at === undefined ? undefined : this.roles.get(at.group);
    assert(at !== undefined && role !== undefined, `a scan of ${request.space}, no space of a group here`);
    role.onScanned?.({ ...request, space: at.name }, result);
  }

  checkInvariants(): void {
    for (const role of this.roles.values()) role.checkInvariants?.();
  }
}

/** `group`'s spaces of what the node's storage preloaded, under their group-level names. */
function ownSpaces(stored: StoredState, group: GroupId): StoredState {
  const own = new Map<string, ReadonlyMap<string, Uint8Array>>();
  for (const [space, entries] of stored) {
    const at = parseGroupSpace(space);
    if (at !== undefined && at.group === group) own.set(at.name, entries);
  }
  return own;
}
