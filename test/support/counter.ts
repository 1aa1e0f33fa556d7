// Test roles for the exactly-once layer: a counter application, an
// unreplicated server hosting it behind the at-most-once wrapper, and a client
// that issues increments through a ClientSession and records every outcome.
import type { Application, StateReader, StateStore } from '../../src/core/application.js';
import { assert } from '../../src/core/assert.js';
import type { Env, ProtocolNode } from '../../src/core/env.js';
import { millis, type NodeId, shardId } from '../../src/core/ids.js';
import { AmoApplication, type AmoOptions, DEFAULT_AMO_OPTIONS } from '../../src/rpc/amo-application.js';
import { ClientSession, type Outcome } from '../../src/rpc/client-session.js';
import type { RpcMessage, RpcTimer } from '../../src/rpc/messages.js';
import { mapStores, type MapStores } from './map-store.js';

const text = new TextEncoder();
const untext = new TextDecoder();

export const INCREMENT = new Uint8Array([1]);
export const READ = new Uint8Array([0]);
/** What query() answers to a command that would write (an INCREMENT). */
export const REFUSED = text.encode('refused: not a read');
/** The one key the counter keeps in its store. */
export const COUNTER_KEY = 'n';

/** The counter's value in `store` (0 before the first increment). */
export function counterValue(store: StateReader): number {
  const bytes = store.get(COUNTER_KEY);
  return bytes === undefined ? 0 : Number(untext.decode(bytes));
}

/**
 * INCREMENT adds one, anything else does not; both answer with the value
 * after. query() answers anything but an INCREMENT the same way, and refuses
 * an INCREMENT with REFUSED. The value lives in the store, under COUNTER_KEY.
 */
export class Counter implements Application {
  apply(command: Uint8Array, store: StateStore): Uint8Array {
    let value = counterValue(store);
    if (command[0] === INCREMENT[0]) {
      value += 1;
      store.put(COUNTER_KEY, text.encode(String(value)));
    }
    return text.encode(String(value));
  }

  query(command: Uint8Array, store: StateReader): Uint8Array {
    if (command[0] === INCREMENT[0]) return REFUSED.slice();
    return text.encode(String(counterValue(store)));
  }
}

/** An unreplicated server: the at-most-once wrapper around a Counter, its state in memory. */
export class CounterServer implements ProtocolNode<RpcMessage, RpcTimer> {
  readonly stores: MapStores = mapStores();
  readonly amo: AmoApplication;

  constructor(
    private readonly env: Env<RpcMessage, RpcTimer>,
    options: AmoOptions = DEFAULT_AMO_OPTIONS,
  ) {
    this.amo = new AmoApplication(new Counter(), options);
  }

  /** The counter as it stands. */
  get counter(): { readonly value: number } {
    return { value: counterValue(this.stores.app) };
  }

  onMessage(from: NodeId, m: RpcMessage): void {
    if (m.type !== 'ClientCommand') return;
    const result = this.amo.apply(m.command, this.stores);
    this.env.send(from, { type: 'ClientResult', shard: m.shard, result });
  }

  onTimer(): void {}
}

export interface CounterClientOptions {
  readonly server: NodeId;
  readonly increments: number;
  readonly window: number;
  readonly retryMs?: number;
}

/** What a counter client observed: all the exactly-once check needs. */
export interface ClientRecord {
  /** ticket -> how many outcomes it got (must end at exactly 1). */
  readonly outcomes: ReadonlyMap<number, number>;
  readonly values: readonly number[];
  readonly failures: readonly number[];
}

export class CounterClient implements ProtocolNode<RpcMessage, RpcTimer>, ClientRecord {
  private readonly session: ClientSession;
  readonly outcomes = new Map<number, number>();
  readonly values: number[] = [];
  readonly failures: number[] = [];

  constructor(env: Env<RpcMessage, RpcTimer>, options: CounterClientOptions) {
    this.session = new ClientSession(
      env,
      { servers: [options.server], retryMs: millis(options.retryMs ?? 20), window: options.window, timerOwner: 0, shard: shardId(0) },
      (ticket, outcome) => this.record(ticket, outcome),
    );
    for (let i = 0; i < options.increments; i++) this.session.submit(INCREMENT);
  }

  submit(command: Uint8Array): void {
    this.session.submit(command);
  }

  done(): boolean {
    return this.session.outstanding() === 0;
  }

  onMessage(_from: NodeId, m: RpcMessage): void {
    if (m.type === 'ClientResult') this.session.onResult(m.result);
  }

  onTimer(t: RpcTimer): void {
    this.session.onTimer(t);
  }

  private record(ticket: number, outcome: Outcome): void {
    this.outcomes.set(ticket, (this.outcomes.get(ticket) ?? 0) + 1);
    if (outcome.ok) this.values.push(Number(untext.decode(outcome.result)));
    else this.failures.push(ticket);
  }
}

/** Asserts the exactly-once outcome of a finished counter run. */
export function checkExactlyOnce(counter: number, clients: readonly ClientRecord[], perClient: number): void {
  const total = clients.length * perClient;
  assert(counter === total, `counter is ${counter}, expected ${total}`);
  const seen = new Set<number>();
  for (const c of clients) {
    assert(c.failures.length === 0, `${c.failures.length} commands failed`);
    assert(c.outcomes.size === perClient, `a client completed ${c.outcomes.size} of ${perClient}`);
    for (const [ticket, n] of c.outcomes) assert(n === 1, `ticket ${ticket} completed ${n} times`);
    for (const v of c.values) {
      assert(!seen.has(v), `result ${v} seen twice: an increment was applied for two commands`);
      seen.add(v);
    }
  }
  assert(seen.size === total, `${seen.size} distinct results, expected ${total}`);
}
