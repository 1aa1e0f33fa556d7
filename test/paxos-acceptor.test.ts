// Acceptor unit tests over the simulator's disk: what a `Chosen` decision may
// take from the acceptor's own accepted values, and what it must not.
import { describe, expect, it } from 'vitest';
import { ballot, nodeId, slot } from '../src/core/ids.js';
import { ACCEPTED_SPACE, ACCEPTOR_SPACE, Acceptor } from '../src/paxos/acceptor.js';
import { MemoryStorage } from '../src/sim/memory-storage.js';

const A = nodeId('a');
const B = nodeId('b');

function acceptor(disk = new MemoryStorage([ACCEPTOR_SPACE, ACCEPTED_SPACE])) {
  const ports = {
    persist: (...w: Parameters<MemoryStorage['writeSync']>[0]) => disk.writeSync(w, { sync: true }),
    persistUnsynced: (...w: Parameters<MemoryStorage['writeSync']>[0]) => disk.writeSync(w, { sync: false }),
    read: (space: string, key: string) => disk.getSync(space, key),
  };
  return { disk, a: new Acceptor(ports, disk.loadSpacesSync([ACCEPTOR_SPACE])) };
}

const cmd = (n: number) => [new Uint8Array([n])];

describe('Acceptor.chosenValue', () => {
  it('gives the value accepted at the chosen ballot, or at a higher one', () => {
    const { a } = acceptor();
    a.onP2a({ slot: slot(3), ballot: ballot(1, A), batch: cmd(7) });
    expect(a.chosenValue(slot(3), ballot(1, A))).toEqual(cmd(7));
    // Chosen at a lower ballot, accepted again at a higher one: phase 1 made the higher ballot carry it.
    expect(a.chosenValue(slot(3), ballot(0, B))).toEqual(cmd(7));
  });

  it('gives nothing when it holds only a lower ballot, nothing at all, or a compacted slot', () => {
    const { a } = acceptor();
    a.onP2a({ slot: slot(3), ballot: ballot(1, A), batch: cmd(7) });
    expect(a.chosenValue(slot(3), ballot(2, B))).toBeUndefined();
    expect(a.chosenValue(slot(4), ballot(1, A))).toBeUndefined();
    a.compact(slot(4));
    expect(a.chosenValue(slot(3), ballot(1, A))).toBeUndefined();
  });

  it('reads the value back from disk after a restart', () => {
    const { disk, a } = acceptor();
    a.onP2a({ slot: slot(5), ballot: ballot(2, B), batch: cmd(9) });
    const { a: again } = acceptor(disk);
    expect(again.chosenValue(slot(5), ballot(2, B))).toEqual(cmd(9));
  });
});

describe('Acceptor.onP1a pages', () => {
  it('cuts its answer at the byte bound, lets one larger value go alone, and says where to go on', () => {
    const { a } = acceptor();
    const big = (n: number) => [new Uint8Array(600).fill(n)];
    for (let s = 0; s < 4; s++) a.onP2a({ slot: slot(s), ballot: ballot(1, A), batch: big(s) });
    const b = ballot(2, B);
    const first = a.onP1a(b, slot(0), 1000);
    expect(first.accepted.map((p) => p.slot)).toEqual([0]);
    expect(first.next).toBe(1);
    expect(first.fromSlot).toBe(0);
    const pages = [first];
    while (pages.at(-1)?.next !== undefined) pages.push(a.onP1a(b, slot(pages.at(-1)?.next ?? 0), 1300));
    expect(pages.map((p) => p.accepted.map((x) => x.slot))).toEqual([[0], [1, 2], [3]]);
    expect(pages.every((p) => p.ballot.round === 2 && p.ballot.leader === B)).toBe(true);
    // Everything in one page when the bound allows it.
    expect(a.onP1a(b, slot(0), 1 << 20).accepted).toHaveLength(4);
  });
});
