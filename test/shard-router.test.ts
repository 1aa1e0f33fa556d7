// Unit tests of the SDK's routing by shard (src/client/shard-router.ts), fed
// results directly: the first command waits for a config; a command goes to
// its shard's owner through that shard's own session; on WrongGroup the router
// reloads the config and sends the same (session, seq) to the shard's new
// owner, so the command is applied once wherever the shard went.
import { describe, expect, it } from 'vitest';
import { ReadyCollector } from '../src/core/env.js';
import { configNum, type GroupId, groupId, millis, type NodeId, nodeId, seq, sessionId, shardId } from '../src/core/ids.js';
import { type GroupTagged, type RouterTimer, ShardRouter } from '../src/client/shard-router.js';
import type { Outcome } from '../src/rpc/client-session.js';
import type { AmoResult, RpcMessage } from '../src/rpc/messages.js';
import { decodeShardMasterCommand, encodeShardMasterResult } from '../src/shardmaster/codec.js';
import type { ShardConfig } from '../src/shardmaster/config.js';

const g1 = groupId(1);
const g2 = groupId(2);
const s1 = shardId(1);
const SERVERS = new Map<GroupId, NodeId[]>([
  [g1, [nodeId('a1'), nodeId('b1')]],
  [g2, [nodeId('a2'), nodeId('b2')]],
]);

function config(num: number, owners: GroupId[]): ShardConfig {
  const groups = new Map([...new Set(owners)].map((g) => [g, SERVERS.get(g) ?? []] as const));
  return { num: configNum(num), shards: owners, groups, pinned: new Set(owners[0] === owners[1] ? [] : [s1]) };
}

function setup() {
  const clock = { now: 0 };
  const env = new ReadyCollector<GroupTagged<RpcMessage>, RouterTimer>(nodeId('c'), () => millis(clock.now), () => 0.5);
  const outcomes: Array<[number, Outcome]> = [];
  const router = new ShardRouter(env, { shardMaster: [nodeId('m1')], retryMs: millis(10), window: 4 }, (t, o) => outcomes.push([t, o]));
  const sent = () =>
    env.take().messages.flatMap(({ to, message: m }) => (m.message.type === 'ClientCommand' ? [{ to, group: m.group, shard: m.message.shard, command: m.message.command }] : []));
  const answer = (group: GroupId, shard: number, result: AmoResult) =>
    router.onMessage(nodeId('x'), { group, message: { type: 'ClientResult', shard: shardId(shard), result } });
  const answerConfig = (c: ShardConfig, id: number) =>
    answer(groupId(0), 0, { kind: 'read', id, result: encodeShardMasterResult({ kind: 'config', config: c }) });
  return { clock, env, router, outcomes, sent, answer, answerConfig };
}

describe('ShardRouter', () => {
  it("waits for a config, sends to the shard's owner, and follows the shard to its new owner on WrongGroup with the same session and seq", () => {
    const t = setup();
    const ticket = t.router.submit(s1, new Uint8Array([7]), false);
    const [query] = t.sent();
    expect(query).toMatchObject({ to: 'm1', group: 0, command: { kind: 'read' } });
    if (query?.command.kind !== 'read') throw new Error('no config query');
    expect(decodeShardMasterCommand(query.command.command)).toEqual({ kind: 'query', num: undefined });
    t.answerConfig(config(1, [g1, g1]), query.command.id);

    const [register] = t.sent();
    expect(register).toMatchObject({ to: 'a1', group: 1, shard: 1, command: { kind: 'register' } });
    if (register?.command.kind !== 'register') throw new Error('no registration');
    t.answer(g1, 1, { kind: 'registered', nonce: register.command.nonce, session: sessionId(3) });
    const [request] = t.sent();
    expect(request).toMatchObject({ to: 'a1', group: 1, shard: 1, command: { kind: 'request', session: 3, seq: 0 } });
    if (request === undefined) throw new Error('no request');

    // The shard moved: g1 refuses without applying. The router asks for the latest config (paced by retryMs).
    t.answer(g1, 1, { kind: 'wrongGroup', shard: s1, configNum: configNum(2), refused: request.command });
    t.clock.now += 10;
    for (const { timer } of t.env.takeTimers()) t.router.onTimer(timer);
    const [again] = t.sent().filter((m) => m.group === 0);
    if (again?.command.kind !== 'read') throw new Error('no second config query');
    t.answerConfig(config(2, [g1, g2]), again.command.id);
    expect(t.router.current()?.num).toBe(2);
    const moved = t.sent();
    expect(moved).toEqual([{ to: 'a2', group: 2, shard: 1, command: request.command }]);

    t.answer(g2, 1, { kind: 'result', session: sessionId(3), seq: seq(0), result: new Uint8Array([1]) });
    t.answer(g2, 1, { kind: 'result', session: sessionId(3), seq: seq(0), result: new Uint8Array([1]) });
    expect(t.outcomes).toEqual([[ticket, { ok: true, result: new Uint8Array([1]) }]]);
    expect(t.router.outstanding()).toBe(0);
  });

  it("a result is routed by its shard: another shard's session with the same ids is not completed by it", () => {
    const t = setup();
    t.router.submit(shardId(0), new Uint8Array([1]), false);
    const [query] = t.sent();
    if (query?.command.kind !== 'read') throw new Error('no config query');
    t.answerConfig(config(1, [g1, g1]), query.command.id);
    const [register] = t.sent();
    if (register?.command.kind !== 'register') throw new Error('no registration');
    t.answer(g1, 0, { kind: 'registered', nonce: register.command.nonce, session: sessionId(1) });
    t.sent();
    t.answer(g1, 1, { kind: 'result', session: sessionId(1), seq: seq(0), result: new Uint8Array([9]) });
    expect(t.outcomes).toEqual([]);
    t.answer(g1, 0, { kind: 'result', session: sessionId(1), seq: seq(0), result: new Uint8Array([2]) });
    expect(t.outcomes).toHaveLength(1);
  });
});

