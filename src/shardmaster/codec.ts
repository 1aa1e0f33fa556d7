// The one mapping between the shard master's domain types and the generated
// wire types (STYLE.md 5). Stored configs use the same encoding as the wire.
//
// Decoding is strict, because every replica must refuse the same bad bytes
// rather than guess at them: strings must be valid UTF-8, no bytes may follow
// the message, the bytes must be the canonical encoding of what they decode
// to, numbers must fit their ids, and a config must be in its one canonical
// form (groups and pins strictly ascending) and keep the invariants of
// config.ts. Bad command bytes are a ShardMasterInputError (code
// MALFORMED_COMMAND); bad result or config bytes a WireError.
import { BinaryReader, type BinaryWriter } from '@bufbuild/protobuf/wire';
import { assert, assertNever } from '../core/assert.js';
import { type ConfigNum, configNum, type GroupId, groupId, type NodeId, parseNodeId, type ShardId, shardId } from '../core/ids.js';
import * as groups from '../gen/shardpax/v1/groups.js';
import * as wire from '../gen/shardpax/v1/shardmaster.js';
import { WireError } from '../rpc/codec.js';
import { checkConfig, groupIdProblem, type ShardConfig, sortedGroupIds } from './config.js';
import {
  type ShardMasterCommand,
  type ShardMasterErrorCodeName,
  ShardMasterInputError,
  type ShardMasterResult,
} from './messages.js';

const UINT32_MAX = 0xffff_ffff;

/** `command`'s numbers must fit the wire's uint32 (validateCommand's ranges are narrower): check outside input first. */
export function encodeShardMasterCommand(command: ShardMasterCommand): Uint8Array {
  return wire.ShardMasterCommand.encode(commandToWire(command)).finish();
}

/** Throws ShardMasterInputError (code MALFORMED_COMMAND) if `bytes` is not a ShardMasterCommand with a kind. */
export function decodeShardMasterCommand(bytes: Uint8Array): ShardMasterCommand {
  const fail = (why: string) => new ShardMasterInputError({ code: 'MALFORMED_COMMAND', message: why });
  return commandFromWire(decodeStrict(bytes, wire.ShardMasterCommand, 'ShardMasterCommand', fail), fail);
}

export function encodeShardMasterResult(result: ShardMasterResult): Uint8Array {
  return wire.ShardMasterResult.encode(resultToWire(result)).finish();
}

/** Throws WireError if `bytes` is not a ShardMasterResult with a kind and a valid config (a server bug or version skew). */
export function decodeShardMasterResult(bytes: Uint8Array): ShardMasterResult {
  return resultFromWire(decodeStrict(bytes, wire.ShardMasterResult, 'ShardMasterResult', wireError));
}

/** Canonical bytes of `config`: equal configs, whatever their maps' insertion order, encode to equal bytes. */
export function encodeShardConfig(config: ShardConfig): Uint8Array {
  return wire.ShardConfig.encode(shardConfigToWire(config)).finish();
}

/** Throws WireError unless `bytes` is a canonical ShardConfig that keeps the invariants of config.ts. */
export function decodeShardConfig(bytes: Uint8Array): ShardConfig {
  return shardConfigFromWire(decodeStrict(bytes, wire.ShardConfig, 'ShardConfig', wireError));
}

function commandToWire(command: ShardMasterCommand): wire.ShardMasterCommand {
  switch (command.kind) {
    case 'join':
      return { kind: { $case: 'join', value: { group: uint32(command.group), servers: [...command.servers] } } };
    case 'leave':
      return { kind: { $case: 'leave', value: { group: uint32(command.group) } } };
    case 'move':
      return { kind: { $case: 'move', value: { shard: uint32(command.shard), group: uint32(command.group) } } };
    case 'query':
      return { kind: { $case: 'query', value: command.num === undefined ? {} : { num: command.num } } };
    default:
      return assertNever(command, 'ShardMasterCommand');
  }
}

function commandFromWire(w: wire.ShardMasterCommand, fail: (why: string) => Error): ShardMasterCommand {
  const k = w.kind;
  if (k === undefined) throw fail('ShardMasterCommand without a kind');
  // uint32 and (checked) uint64 decode to natural numbers, so the id constructors cannot fail here.
  switch (k.$case) {
    case 'join':
      return { kind: 'join', group: groupId(k.value.group), servers: k.value.servers };
    case 'leave':
      return { kind: 'leave', group: groupId(k.value.group) };
    case 'move':
      return { kind: 'move', shard: shardId(k.value.shard), group: groupId(k.value.group) };
    case 'query':
      return { kind: 'query', num: k.value.num === undefined ? undefined : configNum(k.value.num) };
    default:
      return assertNever(k, 'ShardMasterCommand wire kind');
  }
}

function resultToWire(result: ShardMasterResult): wire.ShardMasterResult {
  switch (result.kind) {
    case 'config':
      return { kind: { $case: 'config', value: shardConfigToWire(result.config) } };
    case 'done':
      return { kind: { $case: 'done', value: { num: result.num } } };
    case 'error':
      return { kind: { $case: 'error', value: { code: errorCodeToWire(result.code), message: result.message } } };
    default:
      return assertNever(result, 'ShardMasterResult');
  }
}

function resultFromWire(w: wire.ShardMasterResult): ShardMasterResult {
  const k = w.kind;
  if (k === undefined) throw wireError('ShardMasterResult without a kind');
  switch (k.$case) {
    case 'config':
      return { kind: 'config', config: shardConfigFromWire(k.value) };
    case 'done':
      return { kind: 'done', num: configNum(k.value.num) };
    case 'error':
      return { kind: 'error', code: errorCodeFromWire(k.value.code), message: k.value.message };
    default:
      return assertNever(k, 'ShardMasterResult wire kind');
  }
}

/** The wire form of `config`, for messages that carry one (groups.proto). */
export function shardConfigToWire(config: ShardConfig): wire.ShardConfig {
  return {
    num: config.num,
    shards: config.shards.map((g) => g ?? 0), // group 0 never exists, so it can mean "unassigned"
    groups: sortedGroupIds(config).map((id) => ({ id, servers: [...(config.groups.get(id) ?? [])] })),
    pinned: [...config.pinned].sort((a, b) => a - b),
  };
}

/** Throws WireError unless `w` keeps the invariants of config.ts. */
export function shardConfigFromWire(w: wire.ShardConfig): ShardConfig {
  const groups = new Map<GroupId, readonly NodeId[]>();
  let previousGroup = 0;
  for (const g of w.groups) {
    if (g.id <= previousGroup) throw wireError(`ShardConfig groups not strictly ascending at group ${g.id}`);
    previousGroup = g.id;
    groups.set(groupId(g.id), g.servers.map(nodeIdFromWire));
  }
  const pinned = new Set<ShardId>();
  let previousPin = -1;
  for (const s of w.pinned) {
    if (s <= previousPin) throw wireError(`ShardConfig pinned shards not strictly ascending at shard ${s}`);
    previousPin = s;
    pinned.add(shardId(s));
  }
  const config: ShardConfig = {
    num: configNum(w.num),
    shards: w.shards.map((g) => (g === 0 ? undefined : groupId(g))),
    groups,
    pinned,
  };
  const problem = checkConfig(config);
  if (problem !== undefined) throw wireError(`ShardConfig ${w.num} is not valid: ${problem}`);
  return config;
}

function nodeIdFromWire(s: string): NodeId {
  const id = parseNodeId(s);
  if (id === undefined) throw wireError(`ShardConfig server ${JSON.stringify(s.slice(0, 80))} is not a node id`);
  return id;
}

function errorCodeToWire(code: ShardMasterErrorCodeName): wire.ShardMasterErrorCode {
  const w = ERROR_CODES_TO_WIRE[code];
  assert(w !== undefined, `no wire code for ${code}`);
  return w;
}

function errorCodeFromWire(code: wire.ShardMasterErrorCode): ShardMasterErrorCodeName {
  // The decoder passes any int32 through, so an unknown code is reachable on bad bytes.
  const name = ERROR_CODES_FROM_WIRE.get(code);
  if (name === undefined) throw wireError(`ShardMasterError with code ${code}`);
  return name;
}

const E = wire.ShardMasterErrorCode;
/** A Record, so adding a code name without its wire code does not compile. */
const ERROR_CODES_TO_WIRE: Record<ShardMasterErrorCodeName, wire.ShardMasterErrorCode> = {
  MALFORMED_COMMAND: E.SHARD_MASTER_ERROR_CODE_MALFORMED_COMMAND,
  BAD_GROUP_ID: E.SHARD_MASTER_ERROR_CODE_BAD_GROUP_ID,
  BAD_SERVERS: E.SHARD_MASTER_ERROR_CODE_BAD_SERVERS,
  GROUP_ALREADY_JOINED: E.SHARD_MASTER_ERROR_CODE_GROUP_ALREADY_JOINED,
  UNKNOWN_GROUP: E.SHARD_MASTER_ERROR_CODE_UNKNOWN_GROUP,
  TOO_MANY_GROUPS: E.SHARD_MASTER_ERROR_CODE_TOO_MANY_GROUPS,
  SHARD_OUT_OF_RANGE: E.SHARD_MASTER_ERROR_CODE_SHARD_OUT_OF_RANGE,
  LAST_GROUP: E.SHARD_MASTER_ERROR_CODE_LAST_GROUP,
  ALREADY_OWNER: E.SHARD_MASTER_ERROR_CODE_ALREADY_OWNER,
  NO_SUCH_CONFIG: E.SHARD_MASTER_ERROR_CODE_NO_SUCH_CONFIG,
};
const ERROR_CODES_FROM_WIRE = new Map(
  Object.entries(ERROR_CODES_TO_WIRE).map(([name, code]) => [code, name as ShardMasterErrorCodeName] as const),
);

function uint32(n: number): number {
  assert(Number.isSafeInteger(n) && n >= 0 && n <= UINT32_MAX, `${n} does not fit a uint32: validate before encoding`);
  return n;
}

/**
 * Decodes one whole message; any failure becomes the caller's typed error.
 * The bytes must be exactly what our encoder makes of the message they decode
 * to: the generated decoder alone would accept a trailing zero or end-group
 * tag (it stops there), skip unknown fields, and take non-canonical varints,
 * so two different byte strings would mean one command.
 */
function decodeStrict<T>(bytes: Uint8Array, type: WireType<T>, what: string, fail: (why: string) => Error): T {
  const reader = new BinaryReader(bytes, decodeUtf8Strictly);
  let message: T;
  try {
    message = type.decode(reader);
  } catch (e) {
    // Only the generated decoder runs here, so any throw means bad bytes.
    throw fail(`${what} does not decode: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (reader.pos !== reader.len) throw fail(`${what} has ${reader.len - reader.pos} trailing bytes`);
  if (!sameBytes(type.encode(message).finish(), bytes)) throw fail(`${what} is not in its canonical encoding`);
  return message;
}

/** What ts-proto generates for each message. */
interface WireType<T> {
  encode(message: T): BinaryWriter;
  decode(reader: BinaryReader): T;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8Strictly(bytes: Uint8Array): string {
  return strictUtf8.decode(bytes);
}

function wireError(why: string): WireError {
  return new WireError(why);
}

/** A KV group's question for config `num` (groups.proto), and the group to answer. Throws WireError on anything else. */
export function decodeConfigQuery(bytes: Uint8Array): { readonly replyGroup: GroupId; readonly num: ConfigNum } {
  let w: groups.GroupPeerMessage;
  try {
    w = groups.GroupPeerMessage.decode(bytes);
  } catch (e) {
    throw wireError(`GroupPeerMessage does not decode: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (w.kind?.$case !== 'configQuery') throw wireError(`a ${w.kind?.$case ?? 'empty'} group message at the shard master`);
  if (groupIdProblem(w.replyGroup) !== undefined) throw wireError(`reply group ${w.replyGroup} is no group id`);
  if (!Number.isSafeInteger(w.kind.value.num) || w.kind.value.num < 1) throw wireError(`config ${w.kind.value.num} asked for`);
  return { replyGroup: groupId(w.replyGroup), num: configNum(w.kind.value.num) };
}

/** The shard master's answer: config `config`. */
export function encodeConfigReply(config: ShardConfig): Uint8Array {
  return groups.GroupPeerMessage.encode({ replyGroup: 0, kind: { $case: 'configReply', value: { config: shardConfigToWire(config) } } }).finish();
}
