// Coverage marks (STYLE.md 9): protocol code names its interesting paths, and
// scenario tests assert those paths ran, so a test cannot pass by never
// reaching what it claims to test. A counter bump; no I/O, no effect on behaviour.

const counts = new Map<string, number>();

export function mark(name: string): void {
  counts.set(name, (counts.get(name) ?? 0) + 1);
}

export function markCount(name: string): number {
  return counts.get(name) ?? 0;
}

export function resetMarks(): void {
  counts.clear();
}
