// The door of a Paxos server: every message from the network passes here
// before any role sees it (TigerBeetle asserts its inputs at the door; we
// cannot assert on a peer's bytes, so we check and drop). Decoding already
// checked each field on its own (codec.ts); this checks what needs the group:
// who sent it, whose ballots it carries, and how its slots relate. What
// passes is what an honest member could have sent, so the roles keep their
// assertions for our own bugs.
//
// Not authentication: a process that claims a member's id and sends what
// that member could send passes (mTLS comes with the security work).
import { assertNever } from '../core/assert.js';
import { BOTTOM_BALLOT, type Ballot, compareBallots, type NodeId } from '../core/ids.js';
import type { PaxosMessage } from './messages.js';

/** Why a message was dropped: a fixed code for the counter, and what was wrong with this one. */
export interface InvalidMessage {
  readonly reason: InvalidReason;
  readonly detail: string;
}

export type InvalidReason =
  | 'sender-not-member'
  | 'ballot-leader-not-member'
  | 'ballot-not-senders'
  | 'accepted-below-compaction'
  | 'accepted-out-of-page'
  | 'accepted-above-promise'
  | 'catchup-below-log-start'
  | 'catchup-not-consecutive';

export interface GroupView {
  readonly self: NodeId;
  readonly members: ReadonlySet<NodeId>;
}

/** Undefined if an honest member other than this server could have sent `m`; else why not. */
export function validatePeerMessage(from: NodeId, m: PaxosMessage, group: GroupView): InvalidMessage | undefined {
  if (from === group.self || !group.members.has(from)) {
    return invalid('sender-not-member', `${m.type} from ${from}, not a peer in this group`);
  }
  switch (m.type) {
    // A scout, a heartbeat, a commander and its Chosen go out from the leader whose ballot they carry; a
    // Fence from the rebuilt acceptor whose ballot it is.
    case 'P1a':
    case 'PreVote':
    case 'Heartbeat':
    case 'Chosen':
    case 'Fence':
      return ownBallot(from, m.type, m.ballot);
    // The ballot the asker would run with: its own.
    case 'PreVoteAck':
      return memberBallot(m.type, m.ballot, group);
    case 'P2a':
      return ownBallot(from, m.type, m.pvalue.ballot);
    case 'P1b':
      return checkP1b(m, group);
    // An acceptor's promise: any member's ballot; in a HeartbeatAck, the bottom one while it promised nothing.
    case 'P2b':
    case 'FenceAck':
      return memberBallot(m.type, m.ballot, group);
    case 'HeartbeatAck':
      return compareBallots(m.ballot, BOTTOM_BALLOT) === 0 ? undefined : memberBallot(m.type, m.ballot, group);
    case 'CatchupReply':
      return checkCatchupReply(m);
    case 'Decision':
    case 'Propose':
    case 'CatchupRequest':
    case 'TransferRequest':
    case 'TransferChunk':
    case 'TransferReset':
      return undefined;
    default:
      return assertNever(m, 'PaxosMessage');
  }
}

function ownBallot(from: NodeId, type: string, b: Ballot): InvalidMessage | undefined {
  if (b.leader === from) return undefined;
  return invalid('ballot-not-senders', `${type} from ${from} carries ballot ${show(b)} of another leader`);
}

function memberBallot(type: string, b: Ballot, group: GroupView): InvalidMessage | undefined {
  if (group.members.has(b.leader)) return undefined;
  return invalid('ballot-leader-not-member', `${type} carries ballot ${show(b)}, whose leader is not a member`);
}

/**
 * An acceptor's promise, and one page of the values it accepted: each at or
 * above its compaction point, within the page [fromSlot, next), none above
 * the promise.
 */
function checkP1b(m: Extract<PaxosMessage, { type: 'P1b' }>, group: GroupView): InvalidMessage | undefined {
  const bad = memberBallot('P1b', m.ballot, group);
  if (bad !== undefined) return bad;
  for (const pv of m.accepted) {
    const badValue = memberBallot('P1b accepted value', pv.ballot, group);
    if (badValue !== undefined) return badValue;
    if (pv.slot < m.compactedBelow) {
      return invalid('accepted-below-compaction', `P1b reports slot ${pv.slot} below its compaction point ${m.compactedBelow}`);
    }
    if (pv.slot < m.fromSlot || (m.next !== undefined && pv.slot >= m.next)) {
      return invalid('accepted-out-of-page', `P1b reports slot ${pv.slot} outside its page [${m.fromSlot}, ${m.next ?? 'end'})`);
    }
    if (compareBallots(pv.ballot, m.ballot) > 0) {
      return invalid('accepted-above-promise', `P1b promises ${show(m.ballot)} but accepted ${show(pv.ballot)} in slot ${pv.slot}`);
    }
  }
  return undefined;
}

/** Consecutive decisions from the asked slot on, none below the sender's log start. */
function checkCatchupReply(m: Extract<PaxosMessage, { type: 'CatchupReply' }>): InvalidMessage | undefined {
  const first = m.decisions[0];
  if (first === undefined) return undefined;
  if (first.slot < m.logStart) {
    return invalid('catchup-below-log-start', `CatchupReply starts at slot ${first.slot}, below its log start ${m.logStart}`);
  }
  for (let i = 1; i < m.decisions.length; i++) {
    const s = m.decisions[i]?.slot;
    if (s !== first.slot + i) {
      return invalid('catchup-not-consecutive', `CatchupReply decision ${i} is for slot ${s}, not ${first.slot + i}`);
    }
  }
  return undefined;
}

const invalid = (reason: InvalidReason, detail: string): InvalidMessage => ({ reason, detail });
const show = (b: Ballot): string => `${b.round}.${b.leader}`;
