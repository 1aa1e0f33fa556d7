// A reusable nemesis (DESIGN.md 4; Jepsen's word): random faults on a
// simulation for a while, then everything heals so the run can check
// liveness. Every `gapMs` it rolls once: 30 % crash a node (perhaps wiping its
// disk), restarted after `downMs`, while fewer than `maxOut` are out; 20 %
// isolate one node; 20 % split the nodes in two (when `splitSize` is given);
// otherwise heal the partitions. All choices come from `rng`, so a seed gives
// one schedule.
import type { NodeId } from '../core/ids.js';
import type { Prng } from '../core/prng.js';
import type { Simulation } from './simulation.js';

export interface NemesisOptions {
  readonly nodes: readonly NodeId[];
  /** Faults start before this; at faultMs + 1 every partition heals and every node restarts. */
  readonly faultMs: number;
  /** Time between two rolls, drawn uniformly. */
  readonly gapMs: readonly [number, number];
  /** How long a crashed node stays down, drawn uniformly. */
  readonly downMs: readonly [number, number];
  /** A crash happens only while fewer nodes than this are down or in `alsoOut`. */
  readonly maxOut: number;
  /** Nodes out of service besides the ones down (rebuilding ones, say). */
  readonly alsoOut?: () => readonly NodeId[];
  /** Chance that a crash also loses the node's disk; `onWipe` hears of it. */
  readonly wipeChance?: number;
  readonly onWipe?: (id: NodeId) => void;
  /**
   * The node to crash (half the time) and to isolate (always) when it has
   * one, e.g. the leader; without it every victim is drawn at random.
   */
  readonly target?: () => NodeId | undefined;
  /** Size of the smaller side of a split; none without it. */
  readonly splitSize?: number;
}

export function scheduleNemesis<M, T>(sim: Simulation<M, T>, rng: Prng, o: NemesisOptions): void {
  const down = new Set<NodeId>();
  const shuffled = () => [...o.nodes].sort(() => rng.next() - 0.5);
  const pick = (): NodeId | undefined => o.nodes[rng.int(0, o.nodes.length - 1)];
  const crashVictim = (): NodeId | undefined => {
    if (o.target === undefined) return pick();
    return rng.chance(0.5) ? (o.target() ?? shuffled()[0]) : shuffled()[0];
  };
  const isolated = (): NodeId | undefined => (o.target === undefined ? pick() : o.target());
  for (let t = rng.int(...o.gapMs); t < o.faultMs; t += rng.int(...o.gapMs)) {
    sim.schedule(t, 'nemesis', () => {
      const roll = rng.next();
      const out = new Set([...down, ...(o.alsoOut?.() ?? [])]);
      if (roll < 0.3 && out.size < o.maxOut) {
        const victim = crashVictim();
        if (victim === undefined || out.has(victim)) return;
        sim.crash(victim);
        down.add(victim);
        if (o.wipeChance !== undefined && rng.chance(o.wipeChance)) {
          sim.wipe(victim);
          o.onWipe?.(victim);
        }
        sim.schedule(rng.int(...o.downMs), `restart ${victim}`, () => {
          if (down.delete(victim)) sim.restart(victim);
        });
      } else if (roll < 0.5) {
        const victim = isolated();
        if (victim !== undefined) sim.partition([victim], o.nodes.filter((n) => n !== victim));
      } else if (roll < 0.7 && o.splitSize !== undefined) {
        const order = shuffled();
        sim.partition(order.slice(0, o.splitSize), order.slice(o.splitSize));
      } else {
        sim.heal();
      }
    });
  }
  sim.schedule(o.faultMs + 1, 'heal everything', () => {
    sim.heal();
    for (const id of down) sim.restart(id);
    down.clear();
    sim.setFaults({ lossRate: 0, duplicateRate: 0, minDelayMs: 1, maxDelayMs: 5 });
  });
}
