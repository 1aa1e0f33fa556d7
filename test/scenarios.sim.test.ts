// Named scenarios (dslabs lab 3 style) over the scenario DSL: each scripts one
// situation and asserts the coverage mark of the path it exists to reach.
import { beforeEach, describe, expect, it } from 'vitest';
import { markCount, resetMarks } from '../src/core/marks.js';
import type { NodeId } from '../src/core/ids.js';
import { Scenario } from './support/scenario.js';

describe('scenarios', () => {
  beforeEach(() => resetMarks());

  it('a minority makes no progress, and a stuck put completes after the heal', () => {
    const sc = new Scenario(1);
    const [s0, s1, s2] = sc.servers as [typeof sc.servers[0], typeof sc.servers[0], typeof sc.servers[0]];
    const leader = sc.electLeader();
    const others = sc.servers.filter((s) => s !== leader);
    // The leader and the client alone: the leader cannot reach a majority.
    sc.sim.partition([leader, sc.client], others);
    const ticket = sc.put('stuck', 'v');
    sc.sim.runFor(3_000);
    expect(sc.scriptClient.answers.has(ticket), 'a minority decided a put').toBe(false);
    sc.sim.heal();
    expect(sc.sim.runUntil(() => sc.scriptClient.answers.has(ticket), 10_000), 'the put completes after the heal').toBe(true);
    sc.sim.runFor(500);
    for (const s of [s0, s1, s2]) expect(sc.stored(s, 'stuck')).toBe('v');
  });

  it('a deposed leader steps down when it hears the new one', () => {
    const sc = new Scenario(2);
    const old = sc.electLeader();
    const others = sc.servers.filter((s) => s !== old);
    sc.sim.partition([old], [...others, sc.client]);
    expect(sc.sim.runUntil(() => others.some((s) => sc.server(s).paxos.leader.isActive()), 10_000)).toBe(true);
    expect(sc.server(old).paxos.leader.isActive(), 'isolated, it still believes it leads').toBe(true);
    sc.sim.heal();
    expect(sc.sim.runUntil(() => !sc.server(old).paxos.leader.isActive(), 5_000), 'the old leader stepped down').toBe(true);
    expect(markCount('active leader preempted')).toBeGreaterThan(0);
  });

  it('an isolated leader stops claiming to lead within the election timeout, and resigns', () => {
    const sc = new Scenario(7);
    sc.electLeader();
    sc.sim.runFor(500); // a rival elected in the same tick has been deposed by now
    const old = sc.electLeader();
    expect(sc.server(old).paxos.leader.leads(), 'a leader with a majority knows it leads').toBe(true);
    sc.sim.partition([old], sc.servers.filter((s) => s !== old));
    // electionTicks (10) ticks of 20 ms without an answer: it no longer claims to lead.
    sc.sim.runFor(260);
    expect(sc.server(old).paxos.leader.leads(), 'cut off, it does not claim to lead').toBe(false);
    expect(sc.sim.runUntil(() => !sc.server(old).paxos.leader.isActive(), 2_000), 'it resigned').toBe(true);
    expect(markCount('leader resigns: no majority heard')).toBe(1);
    // Never two leaders that claim to lead at once.
    const claiming = () => sc.servers.filter((s) => sc.server(s).paxos.leader.leads());
    for (let i = 0; i < 50; i++) {
      sc.sim.runFor(20);
      expect(claiming().length).toBeLessThanOrEqual(1);
    }
    sc.sim.heal();
    expect(sc.sim.runUntil(() => claiming().length === 1, 5_000)).toBe(true);
  });

  it('a replica far behind its peers catches up by streaming the state', () => {
    const sc = new Scenario(3);
    sc.electLeader();
    const lagging = sc.servers.find((s) => s !== sc.leader());
    if (lagging === undefined) throw new Error('no follower');
    sc.sim.crash(lagging);
    sc.load(300); // far past the peers' 20-slot log tail
    sc.sim.restart(lagging);
    expect(sc.sim.runUntil(() => sc.caughtUp(lagging), 30_000), 'the lagging replica caught up').toBe(true);
    expect(markCount('replica installs a transferred state')).toBeGreaterThan(0);
    expect(sc.stored(lagging, 'key0')).toBe('value0');
    expect(sc.stored(lagging, 'key299')).toBe('value299');
  });

  it('a crash in the middle of a transfer recovers: the transfer starts over and converges', () => {
    const sc = new Scenario(4);
    sc.electLeader();
    const lagging = sc.servers.find((s) => s !== sc.leader());
    if (lagging === undefined) throw new Error('no follower');
    sc.sim.crash(lagging);
    sc.load(300);
    sc.sim.restart(lagging);
    // Stop it after a few chunks have been stored, before the last.
    const midway = () => sc.server(lagging).paxos.receiver.progress()?.space === 'state' && sc.server(lagging).paxos.receiver.progress()?.fromKey !== '';
    expect(sc.sim.runUntil(midway, 30_000), 'the transfer got under way').toBe(true);
    sc.sim.crash(lagging);
    sc.sim.restart(lagging);
    expect(markCount('replica restarts an interrupted transfer')).toBe(1);
    expect(sc.sim.runUntil(() => sc.caughtUp(lagging), 30_000), 'the restarted transfer converged').toBe(true);
    expect(sc.stored(lagging, 'key150')).toBe('value150');
  });

  it('a sender that crashes mid-transfer makes the receiver start over elsewhere', () => {
    const sc = new Scenario(5);
    sc.electLeader();
    const lagging = sc.servers.find((s) => s !== sc.leader());
    if (lagging === undefined) throw new Error('no follower');
    sc.sim.crash(lagging);
    sc.load(300);
    sc.sim.restart(lagging);
    expect(sc.sim.runUntil(() => sc.server(lagging).paxos.receiver.progress()?.fromKey !== '' && sc.server(lagging).paxos.receiver.active(), 30_000)).toBe(true);
    const source = sc.server(lagging).paxos.receiver.source();
    if (source === undefined) throw new Error('no source');
    sc.sim.crash(source);
    expect(sc.sim.runUntil(() => sc.caughtUp(lagging), 60_000), 'converged from the other peer').toBe(true);
    expect(markCount('state receiver gives up on a silent peer') + markCount('state receiver starts over after a reset')).toBeGreaterThan(0);
    expect(sc.stored(lagging, 'key299')).toBe('value299');
  });

  /**
   * Issue 7, finding 1: kill follower C; A and B acknowledge more writes; kill
   * A and B and lose B's disk; start B and C; start A 10 s later.
   */
  function diskLoss(rebuild: boolean) {
    const sc = new Scenario(6);
    const a = sc.electLeader();
    const [b, c] = sc.servers.filter((s) => s !== a) as [NodeId, NodeId];
    sc.load(10, 60_000, 'early');
    sc.sim.crash(c);
    sc.load(30, 60_000, 'late'); // acknowledged by A and B only
    sc.sim.crash(a);
    sc.sim.crash(b);
    sc.loseDiskAndRestart(b, { rebuild });
    sc.sim.restart(c);
    const probe = sc.put('probe', 'p');
    sc.sim.runFor(10_000);
    const answeredWithoutA = sc.scriptClient.answers.has(probe);
    sc.sim.restart(a);
    sc.sim.runUntil(() => sc.scriptClient.answers.has(probe) && sc.servers.every((s) => sc.caughtUp(s)), 60_000);
    sc.sim.runFor(1_000);
    return { sc, a, b, c, answeredWithoutA, probe };
  }

  it('a node that lost its disk rebuilds as a non-voter: nothing acknowledged is lost, and it votes again', () => {
    const { sc, b, answeredWithoutA, probe } = diskLoss(true);
    expect(answeredWithoutA, 'a stale node and a rebuilding one are no majority').toBe(false);
    expect(sc.scriptClient.answers.get(probe)).toBe('done');
    for (const s of sc.servers) {
      for (let i = 0; i < 30; i++) expect(sc.stored(s, `late${i}`), `${s} late${i}`).toBe(`value${i}`);
      expect(sc.stored(s, 'probe')).toBe('p');
    }
    expect(sc.server(b).paxos.acceptor.rebuilding, 'the rebuilt node votes again').toBe(false);
    expect(markCount('rebuilt acceptor votes again')).toBe(1);
    // It votes for real: with the other follower down, the group still decides.
    const leader = sc.electLeader();
    const other = sc.servers.find((s) => s !== leader && s !== b);
    if (other === undefined) throw new Error('no other follower');
    sc.sim.crash(other);
    sc.load(5, 30_000, 'after');
    expect(sc.stored(b, 'after4')).toBe('value4');
  });

  it('the same sequence without a rebuild loses acknowledged writes (the hazard the rebuild exists for)', () => {
    const { sc, b, c, answeredWithoutA } = diskLoss(false);
    expect(answeredWithoutA, 'the amnesiac voted at once').toBe(true);
    const lost = [b, c].some((s) => sc.stored(s, 'late0') === undefined);
    expect(lost, 'acknowledged writes are missing').toBe(true);
  });
});
