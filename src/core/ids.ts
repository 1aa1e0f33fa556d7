// Branded ids (STYLE.md 3): a plain number or string at run time, a distinct
// type at compile time, made only through a checked constructor.
import { assert } from './assert.js';

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type NodeId = Brand<string, 'NodeId'>;
export type GroupId = Brand<number, 'GroupId'>;
export type ShardId = Brand<number, 'ShardId'>;
export type Slot = Brand<number, 'Slot'>;
export type ConfigNum = Brand<number, 'ConfigNum'>;
export type SessionId = Brand<number, 'SessionId'>;
export type Seq = Brand<number, 'Seq'>;
export type TxnId = Brand<string, 'TxnId'>;
export type Millis = Brand<number, 'Millis'>;

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export function nodeId(s: string): NodeId {
  assert(NODE_ID.test(s), `bad node id ${JSON.stringify(s)}`);
  return s as NodeId;
}

/** `s` as a node id, or undefined if it is not one: for ids that arrive from outside. */
export function parseNodeId(s: string): NodeId | undefined {
  return NODE_ID.test(s) ? (s as NodeId) : undefined;
}

function nat<T extends number>(n: number, what: string): T {
  assert(Number.isSafeInteger(n) && n >= 0, `bad ${what}: ${n}`);
  return n as T;
}

export const groupId = (n: number): GroupId => nat<GroupId>(n, 'group id');
export const shardId = (n: number): ShardId => nat<ShardId>(n, 'shard id');
export const slot = (n: number): Slot => nat<Slot>(n, 'slot');
export const configNum = (n: number): ConfigNum => nat<ConfigNum>(n, 'config number');
export const sessionId = (n: number): SessionId => nat<SessionId>(n, 'session id');
export const seq = (n: number): Seq => nat<Seq>(n, 'seq');
export const millis = (n: number): Millis => nat<Millis>(n, 'millis');

export function txnId(s: string): TxnId {
  assert(s.length > 0 && s.length <= 128, `bad txn id ${JSON.stringify(s)}`);
  return s as TxnId;
}

/** A Paxos ballot (round, leader). Compare only with `compareBallots`. */
export interface Ballot {
  readonly round: number;
  readonly leader: NodeId;
}

export function ballot(round: number, leader: NodeId): Ballot {
  assert(Number.isSafeInteger(round) && round >= 0, `bad ballot round ${round}`);
  return { round, leader };
}

/** The ballot below every real one: promised by a fresh acceptor. */
export const BOTTOM_BALLOT: Ballot = { round: 0, leader: '' as NodeId };

export function compareBallots(a: Ballot, b: Ballot): -1 | 0 | 1 {
  if (a.round !== b.round) return a.round < b.round ? -1 : 1;
  if (a.leader === b.leader) return 0;
  return a.leader < b.leader ? -1 : 1;
}

export function maxBallot(a: Ballot, b: Ballot): Ballot {
  return compareBallots(a, b) >= 0 ? a : b;
}
