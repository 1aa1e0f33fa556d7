// A client that stops reading: for bench/data-load.ts's `stalled` phase.
//
// The SDK reads its sockets eagerly, and Node's http2 forbids pausing a
// session's socket (session.socket.pause() throws
// ERR_HTTP2_NO_SOCKET_MANIPULATION), so this speaks just enough HTTP/2 by hand
// over a plain TCP socket to issue gRPC unary calls to
// /shardpax.v1.KvService/Submit, and then stops reading.
//
// Everything that depends on the client wire lives here, so this is the one
// file to adapt when it changes:
//   - the method path (SUBMIT_PATH);
//   - the cluster id every call names (metadata shardpax-cluster-id);
//   - a session is registered first (register()), as the SDK does;
//   - a get is a session-less AmoCommand{read{id, command}}, as the SDK sends
//     it, where command is the KvCommand{get{key}} bytes (getRequest()); the
//     server keeps no copy of a read's result;
//   - release() still sends one last read, so the phase ends the same way.
//
// Two ways to stall (StallMode):
//   - 'socket': the reader grants the server a large HTTP/2 flow-control window
//     and then stops reading its TCP socket (net.Socket.pause()). Once the
//     kernel buffers are full only the server's own backpressure can bound
//     what it keeps in memory. The reader answers no PING either, so a server
//     with keepalive may close the connection after its ping timeout.
//   - 'stream': the reader keeps reading frames (answers PING and SETTINGS)
//     but sends no WINDOW_UPDATE, so the server can put at most 64 KiB on the
//     wire and must hold the rest: a slow consumer behind a live connection.
//
// Loopback only in practice, cleartext (h2c, prior knowledge), no HPACK
// decoding: response headers are skipped, only DATA and END_STREAM matter.
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { KvCommand } from '../../src/gen/shardpax/v1/kv.js';
import { SubmitRequest } from '../../src/gen/shardpax/v1/client.js';
import { AmoCommand, AmoResult } from '../../src/gen/shardpax/v1/session.js';
import { CLUSTER_ID_METADATA } from '../../src/runtime/cluster-id-metadata.js';

export const SUBMIT_PATH = '/shardpax.v1.KvService/Submit';
/** The KV group a local cluster's SDK talks to (group 0 is the shard master's). */
const KV_GROUP = 1;
export type StallMode = 'socket' | 'stream';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8 } as const;
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8 } as const;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const MAX_WINDOW = 2 ** 31 - 1;
const DEFAULT_WINDOW = 65_535;

interface StreamState {
  readonly id: number;
  readonly chunks: Buffer[];
  bytes: number;
  done: boolean;
  reset: boolean;
}

export interface ReaderStats {
  readonly address: string;
  readonly session: number;
  readonly calls: number;
  /** Calls answered completely (after resume()). */
  completed: number;
  /** DATA bytes read from the server, all streams. */
  dataBytes: number;
  /** Streams the server reset, or that ended without a message. */
  failed: number;
  goaway: boolean;
  closed: boolean;
  /** Largest receive queue of our socket seen by sampleSocket(): bytes the kernel holds for us, unread. */
  maxRxQueue: number;
  /** Largest send queue of the server's end: bytes its kernel holds for us (not in its RSS). */
  maxServerTxQueue: number;
  /**
   * Milliseconds after stall() when the server's end was first seen closed
   * (FIN_WAIT1 behind unsent data, or gone), if it was.
   */
  serverClosedAfterMs: number | undefined;
}

/** One HTTP/2 connection carrying gRPC unary calls, with a hand on its read side. */
export class RawGrpcConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private nextStream = 1;
  private readonly streams = new Map<number, StreamState>();
  private waiters: Array<() => void> = [];
  private readonly authority: string;
  dataBytes = 0;
  goaway = false;
  closed = false;
  error: string | undefined;

  private constructor(
    readonly address: string,
    readonly clusterId: string,
    private readonly socket: Socket,
    private readonly mode: StallMode,
  ) {
    this.authority = address;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.error ??= err.message;
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects and sends the preface; in 'socket' mode grants a window large enough for everything. */
  static async open(address: string, clusterId: string, mode: StallMode, timeoutMs: number): Promise<RawGrpcConnection> {
    const { host, port } = splitAddress(address);
    const socket = netConnect({ host, port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`${address}: no TCP connection in ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const c = new RawGrpcConnection(address, clusterId, socket, mode);
    const settings: Array<[number, number]> = [[SETTINGS_ENABLE_PUSH, 0]];
    if (mode === 'socket') settings.push([SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW]);
    const payload = Buffer.alloc(settings.length * 6);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, i * 6);
      payload.writeUInt32BE(value, i * 6 + 2);
    });
    socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, payload)]));
    if (mode === 'socket') c.windowUpdate(0, MAX_WINDOW - DEFAULT_WINDOW);
    return c;
  }

  /** Starts a unary call with `command` (an AmoCommand, for the local cluster's KV group); returns its stream id. */
  call(command: Uint8Array): number {
    const message = SubmitRequest.encode({ group: KV_GROUP, command: AmoCommand.decode(command) }).finish();
    const id = this.nextStream;
    this.nextStream += 2;
    this.streams.set(id, { id, chunks: [], bytes: 0, done: false, reset: false });
    const headers = Buffer.concat([
      literal(':method', 'POST'),
      literal(':scheme', 'http'),
      literal(':path', SUBMIT_PATH),
      literal(':authority', this.authority),
      literal('content-type', 'application/grpc'),
      literal('te', 'trailers'),
      literal(CLUSTER_ID_METADATA, this.clusterId),
    ]);
    const body = Buffer.alloc(5 + message.byteLength);
    body.writeUInt8(0, 0); // not compressed
    body.writeUInt32BE(message.byteLength, 1);
    body.set(message, 5);
    this.socket.write(Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS, id, headers), frame(FRAME.DATA, FLAG.END_STREAM, id, body)]));
    return id;
  }

  /** Waits until every stream in `ids` ended (or the connection closed, or the time is up). */
  async waitFor(ids: readonly number[], timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const allDone = () => ids.every((id) => this.streams.get(id)?.done === true);
    while (!allDone()) {
      if (this.closed) return false;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** The AmoResult a finished stream carried, or undefined (reset, trailers only, or not a message). */
  result(id: number): AmoResult | undefined {
    const s = this.streams.get(id);
    if (s === undefined || !s.done || s.reset) return undefined;
    const body = Buffer.concat(s.chunks);
    if (body.length < 5 || body.readUInt8(0) !== 0) return undefined;
    const length = body.readUInt32BE(1);
    if (body.length < 5 + length) return undefined;
    return AmoResult.decode(body.subarray(5, 5 + length));
  }

  /** Streams that ended with a whole response message. */
  completed(ids: readonly number[]): number {
    return ids.filter((id) => this.result(id) !== undefined).length;
  }

  failed(ids: readonly number[]): number {
    return ids.filter((id) => {
      const s = this.streams.get(id);
      return s !== undefined && s.done && this.result(id) === undefined;
    }).length;
  }

  /** Stops reading: the socket ('socket' mode), or only flow-control credit ('stream' mode: nothing to do). */
  stall(): void {
    if (this.mode === 'socket') this.socket.pause();
  }

  /** Reads again, granting whatever window the server needs. */
  resume(): void {
    if (this.mode === 'stream') {
      this.windowUpdate(0, MAX_WINDOW - DEFAULT_WINDOW);
      for (const s of this.streams.values()) if (!s.done) this.windowUpdate(s.id, MAX_WINDOW - DEFAULT_WINDOW);
    }
    this.socket.resume();
  }

  /** Local port, to find this socket in /proc/net/tcp. */
  localPort(): number {
    return this.socket.localPort ?? 0;
  }

  remotePort(): number {
    return this.socket.remotePort ?? 0;
  }

  close(): void {
    this.socket.destroy();
    this.closed = true;
    this.wake();
  }

  private windowUpdate(stream: number, increment: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(increment & 0x7fffffff, 0);
    if (!this.socket.destroyed) this.socket.write(frame(FRAME.WINDOW_UPDATE, 0, stream, p));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let woke = false;
    while (this.buffer.length >= 9) {
      const length = this.buffer.readUIntBE(0, 3);
      if (this.buffer.length < 9 + length) break;
      const type = this.buffer.readUInt8(3);
      const flags = this.buffer.readUInt8(4);
      const id = this.buffer.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buffer.subarray(9, 9 + length);
      this.buffer = this.buffer.subarray(9 + length);
      woke = this.onFrame(type, flags, id, payload) || woke;
    }
    if (woke) this.wake();
  }

  /** Handles one frame; true when a stream ended. */
  private onFrame(type: number, flags: number, id: number, payload: Buffer): boolean {
    switch (type) {
      case FRAME.SETTINGS:
        if ((flags & FLAG.ACK) === 0) this.socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0)));
        return false;
      case FRAME.PING:
        if ((flags & FLAG.ACK) === 0) this.socket.write(frame(FRAME.PING, FLAG.ACK, 0, payload));
        return false;
      case FRAME.GOAWAY:
        this.goaway = true;
        return false;
      case FRAME.DATA: {
        const s = this.streams.get(id);
        let data = payload;
        if ((flags & FLAG.PADDED) !== 0) data = payload.subarray(1, payload.length - (payload[0] ?? 0));
        this.dataBytes += data.length;
        if (s === undefined) return false;
        s.chunks.push(Buffer.from(data)); // a copy: `payload` is a view of the read buffer
        s.bytes += data.length;
        if ((flags & FLAG.END_STREAM) !== 0) s.done = true;
        return s.done;
      }
      case FRAME.HEADERS: {
        const s = this.streams.get(id);
        if (s !== undefined && (flags & FLAG.END_STREAM) !== 0) {
          s.done = true;
          return true;
        }
        return false;
      }
      case FRAME.RST_STREAM: {
        const s = this.streams.get(id);
        if (s === undefined) return false;
        s.done = true;
        s.reset = true;
        return true;
      }
      default:
        return false; // WINDOW_UPDATE, CONTINUATION, PRIORITY: nothing to do
    }
  }
}

/** A session-holding client that sends `calls` gets of one key and then stops reading. */
export class StalledReader {
  private ids: number[] = [];
  private stalledAt = 0;
  readonly stats: ReaderStats;

  private constructor(
    private readonly conn: RawGrpcConnection,
    readonly session: number,
    calls: number,
  ) {
    this.stats = {
      address: conn.address,
      session,
      calls,
      completed: 0,
      dataBytes: 0,
      failed: 0,
      goaway: false,
      closed: false,
      maxRxQueue: 0,
      maxServerTxQueue: 0,
      serverClosedAfterMs: undefined,
    };
  }

  /** Connects and registers a session (read normally: its answer is small). */
  static async open(address: string, clusterId: string, mode: StallMode, calls: number, timeoutMs: number): Promise<StalledReader> {
    const conn = await RawGrpcConnection.open(address, clusterId, mode, timeoutMs);
    try {
      const session = await register(conn, timeoutMs);
      return new StalledReader(conn, session, calls);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** Sends the gets, all at once, then stops reading. */
  stall(key: string): void {
    for (let seq = 0; seq < this.stats.calls; seq++) this.ids.push(this.conn.call(getRequest(this.session, seq, 0, key)));
    this.conn.stall();
    this.stalledAt = performance.now();
  }

  /** Looks at the connection in /proc/net/tcp: bytes queued in the kernel at both ends, and whether the server closed it. */
  sampleSocket(): void {
    const { ours, theirs } = tcpConnection(this.conn.localPort(), this.conn.remotePort());
    if (ours === undefined) return;
    this.stats.maxRxQueue = Math.max(this.stats.maxRxQueue, ours.rxQueue);
    this.stats.maxServerTxQueue = Math.max(this.stats.maxServerTxQueue, theirs?.txQueue ?? 0);
    const serverClosed = theirs === undefined || theirs.state !== TCP_ESTABLISHED || ours.state !== TCP_ESTABLISHED;
    if (serverClosed && this.stats.serverClosedAfterMs === undefined) {
      this.stats.serverClosedAfterMs = performance.now() - this.stalledAt;
    }
  }

  /** Reads again and waits (bounded) for the answers that were held back. */
  async drain(timeoutMs: number): Promise<void> {
    this.conn.resume();
    await this.conn.waitFor(this.ids, timeoutMs);
    this.stats.completed = this.conn.completed(this.ids);
    this.stats.failed = this.conn.failed(this.ids);
    this.stats.dataBytes = this.conn.dataBytes;
    this.stats.goaway = this.conn.goaway;
    this.stats.closed = this.conn.closed;
    this.conn.close();
  }

  /**
   * Acknowledges every get on a fresh connection, so the servers may drop the
   * cached 1 MiB results. True when the acknowledging call was answered.
   */
  async release(absentKey: string, timeoutMs: number): Promise<boolean> {
    const conn = await RawGrpcConnection.open(this.conn.address, this.conn.clusterId, 'socket', timeoutMs);
    try {
      // seq `calls` acknowledges every seq below it; its own (small) result stays cached.
      const calls = this.stats.calls;
      const id = conn.call(getRequest(this.session, calls, calls, absentKey));
      await conn.waitFor([id], timeoutMs);
      return conn.result(id) !== undefined;
    } finally {
      conn.close();
    }
  }

  close(): void {
    this.conn.close();
  }
}

async function register(conn: RawGrpcConnection, timeoutMs: number): Promise<number> {
  const nonce = randomInt(2 ** 47);
  const id = conn.call(AmoCommand.encode({ kind: { $case: 'register', value: { nonce } }, shard: 0 }).finish());
  if (!(await conn.waitFor([id], timeoutMs))) {
    throw new Error(`${conn.address}: session registration not answered in ${timeoutMs} ms${conn.error === undefined ? '' : ` (${conn.error})`}`);
  }
  const r = conn.result(id);
  if (r?.kind?.$case !== 'registered' || r.kind.value.nonce !== nonce) {
    throw new Error(`${conn.address}: session registration failed (${r === undefined ? 'no message; a gRPC error' : JSON.stringify(r.kind?.$case)})`);
  }
  return r.kind.value.session;
}

/** A get of `key`: a session-less read whose id is made from (session, seq), so replies can be told apart. */
function getRequest(session: number, seq: number, _ackedBelow: number, key: string): Uint8Array {
  const command = KvCommand.encode({ kind: { $case: 'get', value: { key } } }).finish();
  return AmoCommand.encode({ kind: { $case: 'read', value: { id: session * 1_000_000 + seq, command } }, shard: 0 }).finish();
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h.writeUInt8(type, 3);
  h.writeUInt8(flags, 4);
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman coding (RFC 7541 6.2.2). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 5.1); the flag bits above the prefix are 0. */
function hpackInt(value: number, prefixBits: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([value]);
  const bytes = [max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(address.slice(i + 1)) };
}

const TCP_ESTABLISHED = 1;

interface TcpEntry {
  readonly state: number;
  readonly txQueue: number;
  readonly rxQueue: number;
}

/**
 * Both ends of a loopback IPv4 TCP connection, from /proc/net/tcp: ours (from
 * `localPort`) and the server's (from `remotePort` back to it).
 */
export function tcpConnection(localPort: number, remotePort: number): { ours?: TcpEntry; theirs?: TcpEntry } {
  let text: string;
  try {
    text = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return {};
  }
  const found: { ours?: TcpEntry; theirs?: TcpEntry } = {};
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = parseInt((f[1] ?? '').split(':')[1] ?? '', 16);
    const remote = parseInt((f[2] ?? '').split(':')[1] ?? '', 16);
    const queues = (f[4] ?? '').split(':');
    const entry = { state: parseInt(f[3] ?? '', 16), txQueue: parseInt(queues[0] ?? '0', 16), rxQueue: parseInt(queues[1] ?? '0', 16) };
    if (local === localPort && remote === remotePort) found.ours = entry;
    else if (local === remotePort && remote === localPort) found.theirs = entry;
  }
  return found;
}
