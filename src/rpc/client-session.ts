// Client half of exactly-once RPC (DESIGN.md 2.1). Registers a session, numbers
// requests, keeps up to `window` in flight and retransmits each until its
// result arrives. Reads need no session: each carries a random id, and a
// retransmitted one simply reads again. Every submitted command completes exactly once: with its
// result, or with 'expired' when the server forgot the session (the outcome
// is then unknown and the caller must be told so).
//
// Deterministic: acts only through the Env; retries run on a timer, rotating
// through the servers when one stays silent.
//
// Retransmission is paced like TCP's (RFC 6298, simplified): a command is sent
// again after the smoothed round trip plus four deviations (at least
// `retryMs`), doubling on each try. A fixed period made every slow command (1 MiB values under load)
// go out again and again, and each copy took a slot of its own: the log
// filled with duplicates and throughput collapsed.
import { assert, assertNever } from '../core/assert.js';
import type { Env } from '../core/env.js';
import { type ConfigNum, type Millis, type NodeId, type Seq, type SessionId, type ShardId, seq } from '../core/ids.js';
import type { AmoResult, RpcMessage, RpcTimer } from './messages.js';

export type Outcome = { readonly ok: true; readonly result: Uint8Array } | { readonly ok: false; readonly error: 'expired' };

export interface ClientSessionOptions {
  readonly servers: readonly NodeId[];
  readonly retryMs: Millis;
  /** Most requests in flight at once. */
  readonly window: number;
  /** Tells timers of this session apart from others in the same node. */
  readonly timerOwner: number;
  /** The shard this session's commands go to: a session lives in one shard's exactly-once table. */
  readonly shard: ShardId;
}

interface Pending {
  readonly ticket: number;
  readonly command: Uint8Array;
}

interface InFlight extends Pending {
  /** When it was first sent, and how often: a round trip is measured only on a command sent once (Karn). */
  readonly firstSentAt: number;
  sends: number;
  /** When it goes out again unless answered. */
  resendAt: number;
}

interface ReadInFlight extends InFlight {
  readonly id: number;
}

type State =
  | { readonly kind: 'idle' }
  | { readonly kind: 'registering'; readonly nonce: number; sends: number; resendAt: number }
  | { readonly kind: 'open'; readonly session: SessionId };

/** The longest a command waits before it is sent again, however slow the answers, in retry periods (8 s for the SDK's 500 ms). */
const MAX_TIMEOUT_RETRIES = 16;

export class ClientSession {
  private state: State = { kind: 'idle' };
  private readonly queue: Pending[] = [];
  private readonly readQueue: Pending[] = [];
  private readonly inFlight = new Map<Seq, InFlight>();
  private readonly reads = new Map<number, ReadInFlight>();
  private nextSeq = seq(0);
  private nextTicket = 0;
  private target = 0;
  /** Smoothed round trip and its mean deviation, ms; undefined until the first answer. */
  private srtt: number | undefined;
  private rttVar = 0;
  /** Last answer, or when commands went in flight after a quiet spell: the server is silent since. */
  private heardAt = 0;
  /** Servers tried since the last answer: each waits twice as long as the one before. */
  private silentRotations = 0;
  private timerArmed = false;
  private servers: readonly NodeId[];

  constructor(
    private readonly env: Env<RpcMessage, RpcTimer>,
    private readonly options: ClientSessionOptions,
    private readonly onOutcome: (ticket: number, outcome: Outcome) => void,
    private readonly onWrongGroup?: (configNum: ConfigNum) => void,
  ) {
    assert(options.servers.length > 0, 'a session needs at least one server');
    assert(options.window > 0);
    this.servers = options.servers;
  }

  /** Queues a command; returns the ticket its outcome will carry. */
  submit(command: Uint8Array): number {
    const ticket = this.nextTicket++;
    this.queue.push({ ticket, command });
    this.pump();
    return ticket;
  }

  /** Queues a command that only reads; returns the ticket its outcome will carry. */
  read(command: Uint8Array): number {
    const ticket = this.nextTicket++;
    this.readQueue.push({ ticket, command });
    this.pump();
    return ticket;
  }

  /**
   * The session's shard moved to another group (its table moved with it): from now on talk to `servers`, and
   * send everything in flight there at once.
   */
  retarget(servers: readonly NodeId[]): void {
    assert(servers.length > 0, 'a session needs at least one server');
    this.servers = servers;
    this.target = 0;
    const now = this.env.now();
    this.heardAt = now;
    this.silentRotations = 0;
    this.retransmit(now, true);
    this.armTimer();
  }

  /** Commands submitted and not yet completed. */
  outstanding(): number {
    return this.queue.length + this.readQueue.length + this.inFlight.size + this.reads.size;
  }

  onResult(result: AmoResult): void {
    switch (result.kind) {
      case 'registered':
        if (this.state.kind !== 'registering' || this.state.nonce !== result.nonce) return;
        this.state = { kind: 'open', session: result.session };
        this.nextSeq = seq(0);
        this.heardAt = this.env.now();
        this.silentRotations = 0;
        this.pump();
        return;
      case 'result': {
        const f = this.currentRequest(result.session, result.seq);
        if (f === undefined) return; // a duplicate answer: its command completed already
        this.answered(f);
        this.inFlight.delete(result.seq);
        this.onOutcome(f.ticket, { ok: true, result: result.result });
        this.pump();
        return;
      }
      case 'expired':
        if (this.currentRequest(result.session, result.seq) === undefined) return;
        this.failInFlight();
        return;
      case 'read': {
        const r = this.reads.get(result.id);
        if (r === undefined) return; // a duplicate answer
        this.answered(r);
        this.reads.delete(result.id);
        this.onOutcome(r.ticket, { ok: true, result: result.result });
        this.pump();
        return;
      }
      case 'wrongGroup':
        // Nothing was applied: the commands stay in flight, and go to the shard's new owner once the owner of this
        // session points it there (retarget); the session itself moves with the shard.
        this.onWrongGroup?.(result.configNum);
        return;
      default:
        assertNever(result, 'AmoResult');
    }
  }

  onTimer(timer: RpcTimer): void {
    if (timer.owner !== this.options.timerOwner) return;
    this.timerArmed = false;
    const now = this.env.now();
    // Silent for a retransmission timeout (backed off): try the next server (any member passes commands to its leader).
    const rotate = now - this.heardAt >= this.backedOff(this.silentRotations + 1);
    if (rotate) {
      this.target = (this.target + 1) % this.servers.length;
      this.heardAt = now;
      this.silentRotations += 1;
    }
    this.retransmit(now, rotate);
    this.armTimer();
  }

  /** The retransmission timeout before backoff: the round trip as measured plus four deviations, at least retryMs. */
  private timeout(): number {
    if (this.srtt === undefined) return this.options.retryMs;
    return Math.max(this.options.retryMs, Math.min(this.maxTimeout(), Math.ceil(this.srtt + 4 * this.rttVar)));
  }

  private answered(f: InFlight): void {
    const now = this.env.now();
    this.heardAt = now;
    this.silentRotations = 0;
    if (f.sends !== 1) return; // which send this answers is unknown
    const sample = now - f.firstSentAt;
    if (this.srtt === undefined) {
      this.srtt = sample;
      this.rttVar = sample / 2;
    } else {
      this.rttVar = 0.75 * this.rttVar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
  }

  /** The wait after the `tries`-th try: the timeout, doubled per earlier try. */
  private backedOff(tries: number): number {
    return Math.min(this.maxTimeout(), this.timeout() * 2 ** Math.min(tries - 1, 6));
  }

  private maxTimeout(): number {
    return MAX_TIMEOUT_RETRIES * this.options.retryMs;
  }

  /** When a command sent now for the `sends`-th time goes out again. */
  private resendAt(now: number, sends: number): number {
    return now + this.backedOff(sends);
  }

  private currentRequest(session: SessionId, s: Seq): InFlight | undefined {
    if (this.state.kind !== 'open' || this.state.session !== session) return undefined;
    return this.inFlight.get(s);
  }

  /** The server forgot our session: whatever was in flight has an unknown outcome. */
  private failInFlight(): void {
    const failed = [...this.inFlight.values()];
    this.inFlight.clear();
    this.state = { kind: 'idle' };
    for (const f of failed) this.onOutcome(f.ticket, { ok: false, error: 'expired' });
    this.pump();
  }

  private pump(): void {
    const now = this.env.now();
    if (this.inFlightCount() === 0 && this.state.kind !== 'registering') this.heardAt = now; // silence counts from here
    while (this.readQueue.length > 0 && this.inFlightCount() < this.options.window) {
      const p = this.readQueue.shift();
      assert(p !== undefined);
      const r: ReadInFlight = { ...p, id: this.randomNonce(), firstSentAt: now, sends: 1, resendAt: this.resendAt(now, 1) };
      this.reads.set(r.id, r);
      this.sendRead(r);
    }
    if (this.state.kind === 'idle' && this.queue.length > 0) {
      this.state = { kind: 'registering', nonce: this.randomNonce(), sends: 1, resendAt: this.resendAt(now, 1) };
      this.sendRegister(this.state.nonce);
    }
    if (this.state.kind === 'open') {
      while (this.queue.length > 0 && this.inFlightCount() < this.options.window) {
        const p = this.queue.shift();
        assert(p !== undefined);
        const s = this.nextSeq;
        this.nextSeq = seq(s + 1);
        this.inFlight.set(s, { ...p, firstSentAt: now, sends: 1, resendAt: this.resendAt(now, 1) });
        this.sendRequest(this.state.session, s, p.command);
      }
    }
    this.armTimer();
  }

  private inFlightCount(): number {
    return this.inFlight.size + this.reads.size;
  }

  /** Sends again what is due, or everything in flight when `all` (a new server was just chosen). */
  private retransmit(now: number, all: boolean): void {
    const due = (f: { sends: number; resendAt: number }): boolean => {
      if (!all && f.resendAt > now) return false;
      f.sends += 1;
      f.resendAt = this.resendAt(now, f.sends);
      return true;
    };
    for (const r of this.reads.values()) if (due(r)) this.sendRead(r);
    const st = this.state;
    if (st.kind === 'registering' && due(st)) this.sendRegister(st.nonce);
    if (st.kind !== 'open') return;
    for (const [s, f] of this.inFlight) if (due(f)) this.sendRequest(st.session, s, f.command);
  }

  /**
   * 53 random bits (two draws: one carries only 32): the cluster dedupes
   * registrations by nonce, so two clients must practically never share one.
   */
  private randomNonce(): number {
    const high = Math.floor(this.env.random() * 2 ** 21);
    const low = Math.floor(this.env.random() * 2 ** 32);
    return high * 2 ** 32 + low;
  }

  private ackedBelow(): Seq {
    let low = this.nextSeq;
    for (const s of this.inFlight.keys()) if (s < low) low = s;
    return low;
  }

  private sendRead(r: ReadInFlight): void {
    this.env.send(this.server(), { type: 'ClientCommand', shard: this.options.shard, command: { kind: 'read', id: r.id, command: r.command } });
  }

  private sendRegister(nonce: number): void {
    this.env.send(this.server(), { type: 'ClientCommand', shard: this.options.shard, command: { kind: 'register', nonce } });
  }

  private sendRequest(session: SessionId, s: Seq, command: Uint8Array): void {
    const ackedBelow = this.ackedBelow();
    this.env.send(this.server(), {
      type: 'ClientCommand',
      shard: this.options.shard,
      command: { kind: 'request', session, seq: s, ackedBelow, command },
    });
  }

  private server(): NodeId {
    const s = this.servers[this.target];
    assert(s !== undefined);
    return s;
  }

  private armTimer(): void {
    if (this.timerArmed) return;
    const sessionIdle = this.state.kind === 'idle' || (this.state.kind === 'open' && this.inFlight.size === 0);
    if (sessionIdle && this.reads.size === 0) return;
    this.timerArmed = true;
    this.env.setTimer({ type: 'SessionRetry', owner: this.options.timerOwner }, this.options.retryMs);
  }
}
