// Unit and property tests of the replicated KV application (DESIGN.md 2.2,
// 2.4), driven through the same byte codec the replicas see. The application
// is stateless: its state lives in the store it is handed (an in-memory
// MapStore here, test/support/map-store.ts).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seq, type SessionId } from '../src/core/ids.js';
import * as wire from '../src/gen/shardpax/v1/kv.js';
import {
  decodeKvCommand,
  decodeKvResult,
  decodeKvSnapshot,
  encodeKvCommand,
  encodeKvResult,
  encodeKvSnapshot,
} from '../src/kv/codec.js';
import { KvApplication } from '../src/kv/kv-application.js';
import {
  checkCommand,
  KvInputError,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  utf8Length,
  validateCommand,
  validateKey,
  validateValue,
} from '../src/kv/limits.js';
import type { KvCommand, KvErrorCodeName, KvResult } from '../src/kv/messages.js';
import { AmoApplication } from '../src/rpc/amo-application.js';
import { WireError } from '../src/rpc/codec.js';
import { MapStore, mapStores } from './support/map-store.js';

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

const app = new KvApplication(); // stateless: one instance serves every store

function run(store: MapStore, command: KvCommand): KvResult {
  return decodeKvResult(app.apply(encodeKvCommand(command), store));
}

function query(store: MapStore, command: KvCommand): KvResult {
  return decodeKvResult(app.query(encodeKvCommand(command), store));
}

const get = (key: string): KvCommand => ({ kind: 'get', key });
const put = (key: string, value: Uint8Array | string): KvCommand => ({
  kind: 'put',
  key,
  value: typeof value === 'string' ? bytes(value) : value,
});
const del = (key: string): KvCommand => ({ kind: 'delete', key });

function errorCode(r: KvResult): KvErrorCodeName {
  if (r.kind !== 'error') throw new Error(`expected an error, got ${r.kind}`);
  return r.code;
}

/** The invariant of the stored state: every key and value within the limits. */
function checkStored(store: MapStore): void {
  for (const [k, v] of store.entries()) {
    expect(validateKey(k), `stored key ${JSON.stringify(k.slice(0, 32))}`).toBeUndefined();
    expect(validateValue(v)).toBeUndefined();
  }
}

describe('KvApplication: get, put, delete', () => {
  it('round-trips put, get, overwrite and delete through the codec, keeping the data in the store', () => {
    const store = new MapStore();
    expect(run(store, put('a', 'one'))).toEqual({ kind: 'done' });
    expect(store.get('a')).toEqual(bytes('one'));
    expect(run(store, get('a'))).toEqual({ kind: 'value', value: bytes('one') });
    expect(run(store, put('a', 'two'))).toEqual({ kind: 'done' });
    expect(run(store, get('a'))).toEqual({ kind: 'value', value: bytes('two') });
    expect(store.dump()).toEqual([['a', [...bytes('two')]]]);
    expect(run(store, del('a'))).toEqual({ kind: 'done' });
    expect(run(store, get('a'))).toEqual({ kind: 'value', value: undefined });
    expect(run(store, del('a'))).toEqual({ kind: 'done' }); // deleting an absent key is not an error
    expect(store.size).toBe(0);
  });

  it('reads what the store holds, whoever wrote it (a restarted replica reads its disk)', () => {
    const store = new MapStore([['k', bytes('from disk')]]);
    expect(run(store, get('k'))).toEqual({ kind: 'value', value: bytes('from disk') });
    expect(query(store, get('k'))).toEqual({ kind: 'value', value: bytes('from disk') });
  });

  it('a get writes nothing', () => {
    const store = new MapStore([['k', bytes('v')]]);
    run(store, get('k'));
    run(store, get('absent'));
    expect(store.writes).toBe(0);
  });

  it('tells an absent key (found=false) from a present empty value (found=true, 0 bytes)', () => {
    const store = new MapStore();
    run(store, put('empty', new Uint8Array()));
    expect(run(store, get('empty'))).toEqual({ kind: 'value', value: new Uint8Array() });
    expect(run(store, get('absent'))).toEqual({ kind: 'value', value: undefined });
    const onWire = (key: string) => wire.KvResult.decode(app.apply(encodeKvCommand(get(key)), store)).kind;
    expect(onWire('empty')).toEqual({ $case: 'value', value: { found: true, value: new Uint8Array() } });
    expect(onWire('absent')).toEqual({ $case: 'value', value: { found: false, value: new Uint8Array() } });
  });

  it('stores the value bytes exactly, from a command at an offset in a larger buffer', () => {
    const store = new MapStore();
    const command = encodeKvCommand(put('k', 'abc'));
    const framed = new Uint8Array(command.length + 8).fill(0x55);
    framed.set(command, 4);
    expect(decodeKvResult(app.apply(framed.subarray(4, 4 + command.length), store))).toEqual({ kind: 'done' });
    framed.fill(0x7a); // the store holds its own copy (as the storage port does), not a view of the command
    expect(store.get('k')).toEqual(bytes('abc'));
    const result = app.apply(encodeKvCommand(get('k')), store);
    result.fill(0); // a result is fresh bytes, not a view of the stored value
    expect(store.get('k')).toEqual(bytes('abc'));
  });

  it('takes unicode keys, distinct by code point', () => {
    const store = new MapStore();
    run(store, put('ключ', '1'));
    run(store, put('🔑', '2'));
    run(store, put('e\u0301', '3')); // not normalized: distinct from 'é'
    expect(run(store, get('ключ'))).toEqual({ kind: 'value', value: bytes('1') });
    expect(run(store, get('🔑'))).toEqual({ kind: 'value', value: bytes('2') });
    expect(run(store, get('é'))).toEqual({ kind: 'value', value: undefined });
    expect(store.keys()).toEqual(['e\u0301', 'ключ', '🔑']);
  });

  it('ends with the same stored state whatever the order of puts to distinct keys', () => {
    const pairs: [string, string][] = [
      ['b', '2'],
      ['a', '1'],
      ['ключ', '3'],
      ['🔑', '4'],
      ['\uffff', '5'],
      ['empty', ''],
    ];
    const forward = new MapStore();
    const backward = new MapStore();
    for (const [k, v] of pairs) run(forward, put(k, v));
    for (const [k, v] of [...pairs].reverse()) run(backward, put(k, v));
    expect(forward.dump()).toEqual(backward.dump());
    expect(forward.size).toBe(pairs.length);
    for (const [k, v] of pairs) expect(run(backward, get(k))).toEqual({ kind: 'value', value: bytes(v) });
  });
});

describe('KvApplication: query (reads outside the exactly-once table)', () => {
  it('answers a get like apply does', () => {
    const store = new MapStore();
    run(store, put('a', 'one'));
    run(store, put('empty', new Uint8Array()));
    for (const key of ['a', 'empty', 'absent']) expect(query(store, get(key))).toEqual(run(store, get(key)));
    expect(query(store, get('absent'))).toEqual({ kind: 'value', value: undefined });
  });

  it('refuses a put or a delete with an error result, and never writes', () => {
    const store = new MapStore([['k', bytes('v')]]);
    const before = store.dump();
    expect(query(store, put('k', 'other'))).toEqual({ kind: 'error', code: 'MALFORMED_COMMAND', message: 'a put is not a read' });
    expect(query(store, put('new', 'x'))).toMatchObject({ kind: 'error', code: 'MALFORMED_COMMAND' });
    expect(query(store, del('k'))).toEqual({ kind: 'error', code: 'MALFORMED_COMMAND', message: 'a delete is not a read' });
    expect(store.writes).toBe(0);
    expect(store.dump()).toEqual(before);
  });

  it('checks the limits and the bytes like apply', () => {
    const store = new MapStore();
    expect(errorCode(query(store, get('')))).toBe('EMPTY_KEY');
    expect(errorCode(query(store, get('k'.repeat(MAX_KEY_BYTES + 1))))).toBe('KEY_TOO_LARGE');
    expect(errorCode(query(store, put('k', new Uint8Array(MAX_VALUE_BYTES + 1))))).toBe('VALUE_TOO_LARGE');
    expect(errorCode(decodeKvResult(app.query(new Uint8Array([0xff, 0xff, 0xff]), store)))).toBe('MALFORMED_COMMAND');
    expect(store.writes).toBe(0);
  });

  it('never throws or writes on arbitrary bytes, and answers with a decodable result', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (input) => {
        const store = new MapStore([['k', bytes('v')]]);
        const r = decodeKvResult(app.query(input, store));
        expect(['value', 'error']).toContain(r.kind);
        expect(store.writes).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('KvApplication: limits', () => {
  const atKeyLimit = 'k'.repeat(MAX_KEY_BYTES);
  const pastKeyLimit = 'k'.repeat(MAX_KEY_BYTES + 1);
  // 342 three-byte characters: under the limit in UTF-16 units, over it in UTF-8 bytes.
  const wideKey = '€'.repeat(342);

  it('accepts a key and a value exactly at the limits', () => {
    const store = new MapStore();
    expect(run(store, put(atKeyLimit, new Uint8Array(MAX_VALUE_BYTES)))).toEqual({ kind: 'done' });
    expect(store.get(atKeyLimit)?.byteLength).toBe(MAX_VALUE_BYTES);
  });

  it('refuses oversized keys on every command, counting UTF-8 bytes, and changes nothing', () => {
    const store = new MapStore();
    run(store, put('keep', 'v'));
    const before = store.dump();
    const writes = store.writes;
    for (const key of [pastKeyLimit, wideKey]) {
      for (const command of [put(key, 'v'), get(key), del(key)]) {
        expect(errorCode(run(store, command))).toBe('KEY_TOO_LARGE');
      }
    }
    expect(store.dump()).toEqual(before);
    expect(store.writes).toBe(writes);
  });

  it('refuses an oversized value and keeps the old one', () => {
    const store = new MapStore();
    run(store, put('k', 'old'));
    const r = run(store, put('k', new Uint8Array(MAX_VALUE_BYTES + 1)));
    expect(r).toEqual({
      kind: 'error',
      code: 'VALUE_TOO_LARGE',
      message: `value is ${MAX_VALUE_BYTES + 1} bytes; the limit is ${MAX_VALUE_BYTES}`,
    });
    expect(store.get('k')).toEqual(bytes('old'));
  });

  it('refuses the empty key on every command', () => {
    const store = new MapStore();
    for (const command of [put('', 'v'), get(''), del('')]) expect(errorCode(run(store, command))).toBe('EMPTY_KEY');
    expect(store.size).toBe(0);
    expect(store.writes).toBe(0);
  });

  it('checks the key before the value', () => {
    expect(validateCommand(put('', new Uint8Array(MAX_VALUE_BYTES + 1)))?.code).toBe('EMPTY_KEY');
  });
});

describe('KvApplication: malformed commands', () => {
  const malformed: [string, Uint8Array][] = [
    ['garbage', new Uint8Array([0xff, 0xff, 0xff])],
    ['no bytes (no kind)', new Uint8Array()],
    ['a zero tag', new Uint8Array([0x00])],
    ['a truncated put', encodeKvCommand(put('key', 'value')).subarray(0, 6)],
    ['trailing bytes after a zero tag', new Uint8Array([...encodeKvCommand(get('k')), 0x00, 0x01])],
    ['a key that is not UTF-8', new Uint8Array([0x0a, 0x03, 0x0a, 0x01, 0xff])],
    ['a length past the end', new Uint8Array([0x0a, 0x7f, 0x0a])],
    ['a varint that never ends', new Uint8Array(12).fill(0x80)],
  ];

  it.each(malformed)('answers %s with MALFORMED_COMMAND, without throwing or changing state', (_, input) => {
    const store = new MapStore();
    run(store, put('keep', 'v'));
    const before = store.dump();
    const writes = store.writes;
    const r = decodeKvResult(app.apply(input, store));
    expect(errorCode(r)).toBe('MALFORMED_COMMAND');
    expect(store.dump()).toEqual(before);
    expect(store.writes).toBe(writes);
  });

  it('never throws on arbitrary bytes, answers with a decodable result, and stores only what is within the limits', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (input) => {
        const store = new MapStore();
        const r = decodeKvResult(app.apply(input, store));
        expect(['value', 'done', 'error']).toContain(r.kind);
        if (r.kind !== 'done') expect(store.writes).toBe(0);
        checkStored(store);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodeKvCommand throws a KvInputError with code MALFORMED_COMMAND', () => {
    const thrown = catchError(() => decodeKvCommand(new Uint8Array([0xff, 0xff, 0xff])));
    expect(thrown).toBeInstanceOf(KvInputError);
    expect(thrown).toMatchObject({ code: 'MALFORMED_COMMAND' });
  });
});

describe('KvApplication against a Map model', () => {
  const keyArb = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom('a', 'b', 'c', 'ключ', '🔑') }, // few keys: overwrites and deletes hit
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 1, arbitrary: fc.constant('x'.repeat(MAX_KEY_BYTES + 1)) },
  );
  const commandArb: fc.Arbitrary<KvCommand> = fc.oneof(
    keyArb.map((key) => get(key)),
    fc.tuple(keyArb, fc.uint8Array({ maxLength: 8 })).map(([key, value]) => put(key, value)),
    keyArb.map((key) => del(key)),
  );

  /** What a plain Map says the answer is, given the shared limit checks. */
  function modelApply(model: Map<string, Uint8Array>, c: KvCommand): KvResult {
    const violation = validateCommand(c);
    if (violation !== undefined) return { kind: 'error', ...violation };
    if (c.kind === 'get') return { kind: 'value', value: model.get(c.key) };
    if (c.kind === 'put') model.set(c.key, c.value);
    else model.delete(c.key);
    return { kind: 'done' };
  }

  it('answers and ends like the model; a replica that starts from a copy of the store midway ends identical', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 60 }), fc.nat(), (commands, cut) => {
        const store = new MapStore();
        const model = new Map<string, Uint8Array>();
        const split = commands.length === 0 ? 0 : cut % commands.length;
        let late: MapStore | undefined; // installed midway, as a state transfer does
        commands.forEach((c, i) => {
          if (i === split) late = store.clone();
          const r = run(store, c);
          expect(r).toEqual(modelApply(model, c));
          if (c.kind === 'get') expect(query(store, c)).toEqual(r);
          if (late !== undefined) expect(run(late, c)).toEqual(r);
        });
        checkStored(store);
        expect(store.size).toBe(model.size);
        for (const [k, v] of model) expect(store.get(k)).toEqual(v);
        if (late !== undefined) expect(late.dump()).toEqual(store.dump());
      }),
      { numRuns: 300 },
    );
  });
});

describe('KvApplication behind the exactly-once wrapper', () => {
  it('applies a retried put once: a duplicate after a delete does not resurrect the key', () => {
    const stores = mapStores();
    const amo = new AmoApplication(new KvApplication());
    const reg = amo.apply({ kind: 'register', nonce: 1 }, stores);
    if (reg.kind !== 'registered') throw new Error('expected registered');
    const request = (session: SessionId, s: number, command: KvCommand) =>
      amo.apply(
        { kind: 'request', session, seq: seq(s), ackedBelow: seq(0), command: encodeKvCommand(command) },
        stores,
      );
    request(reg.session, 0, put('k', 'v'));
    request(reg.session, 1, del('k'));
    const retried = request(reg.session, 0, put('k', 'v'));
    expect(retried.kind).toBe('result');
    if (retried.kind === 'result') expect(decodeKvResult(retried.result)).toEqual({ kind: 'done' });
    expect(stores.app.get('k')).toBeUndefined();
  });

  it('answers a read through query, seeing every write before it, and keeps nothing for it', () => {
    const stores = mapStores();
    const amo = new AmoApplication(new KvApplication());
    const reg = amo.apply({ kind: 'register', nonce: 1 }, stores);
    if (reg.kind !== 'registered') throw new Error('expected registered');
    amo.apply(
      { kind: 'request', session: reg.session, seq: seq(0), ackedBelow: seq(0), command: encodeKvCommand(put('k', 'v')) },
      stores,
    );
    const results = stores.results.dump();
    const read = amo.apply({ kind: 'read', id: 3, command: encodeKvCommand(get('k')) }, stores);
    expect(read.kind).toBe('read');
    if (read.kind === 'read') expect(decodeKvResult(read.result)).toEqual({ kind: 'value', value: bytes('v') });
    const write = amo.apply({ kind: 'read', id: 4, command: encodeKvCommand(del('k')) }, stores);
    if (write.kind !== 'read') throw new Error(`expected read, got ${write.kind}`);
    expect(errorCode(decodeKvResult(write.result))).toBe('MALFORMED_COMMAND');
    expect(stores.app.get('k')).toEqual(bytes('v'));
    expect(stores.results.dump()).toEqual(results);
  });
});

describe('limits and KvInputError (the client-side check)', () => {
  it('names the limit and the actual size', () => {
    expect(() => checkCommand(put('k'.repeat(2048), 'v'))).toThrow('key is 2048 bytes; the limit is 1024');
    expect(() => checkCommand(get('€'.repeat(400)))).toThrow('key is 1200 bytes; the limit is 1024');
    expect(() => checkCommand(put('k', new Uint8Array(MAX_VALUE_BYTES + 1)))).toThrow(
      'value is 1048577 bytes; the limit is 1048576',
    );
    const thrown = catchError(() => checkCommand(del('')));
    expect(thrown).toBeInstanceOf(KvInputError);
    expect(thrown).toMatchObject({ name: 'KvInputError', code: 'EMPTY_KEY', message: 'key is empty' });
    expect(() => checkCommand(put('ok', 'ok'))).not.toThrow();
  });

  it('refuses a key with a lone surrogate, which UTF-8 cannot carry', () => {
    expect(validateCommand(get('a\ud800b'))?.code).toBe('MALFORMED_COMMAND');
    expect(validateCommand(get('\udc00'))?.code).toBe('MALFORMED_COMMAND');
    expect(validateCommand(get('🔑'))).toBeUndefined();
  });

  it('counts UTF-8 bytes like TextEncoder, and only well-formed strings have a count', () => {
    const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: anyUnit })), (s) => {
        expect(utf8Length(s)).toBe(isWellFormed(s) ? enc.encode(s).byteLength : undefined);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('codec', () => {
  it('round-trips every result kind', () => {
    const results: KvResult[] = [
      { kind: 'value', value: bytes('v') },
      { kind: 'value', value: new Uint8Array() },
      { kind: 'value', value: undefined },
      { kind: 'done' },
      { kind: 'error', code: 'MALFORMED_COMMAND', message: 'm' },
      { kind: 'error', code: 'EMPTY_KEY', message: 'e' },
      { kind: 'error', code: 'KEY_TOO_LARGE', message: 'k' },
      { kind: 'error', code: 'VALUE_TOO_LARGE', message: 'v' },
    ];
    for (const r of results) expect(decodeKvResult(encodeKvResult(r))).toEqual(r);
  });

  it('round-trips snapshots, sorted', () => {
    const m = new Map([
      ['z', bytes('1')],
      ['a', bytes('2')],
    ]);
    const decoded = decodeKvSnapshot(encodeKvSnapshot(m));
    expect([...decoded.keys()]).toEqual(['a', 'z']);
    expect(decoded).toEqual(m);
  });

  it('refuses a corrupt or unsorted snapshot with a WireError', () => {
    const unsorted = wire.KvSnapshot.encode({
      entries: [
        { key: 'b', value: bytes('2') },
        { key: 'a', value: bytes('1') },
      ],
    }).finish();
    const duplicate = wire.KvSnapshot.encode({
      entries: [
        { key: 'a', value: bytes('1') },
        { key: 'a', value: bytes('2') },
      ],
    }).finish();
    for (const bad of [new Uint8Array([0xff, 0xff, 0xff]), unsorted, duplicate]) {
      expect(catchError(() => decodeKvSnapshot(bad))).toBeInstanceOf(WireError);
    }
  });

  it('refuses bad results with a WireError', () => {
    const bad = [
      new Uint8Array([0xff, 0xff, 0xff]),
      new Uint8Array(), // no kind
      wire.KvResult.encode({ kind: { $case: 'value', value: { found: false, value: bytes('x') } } }).finish(),
      wire.KvResult.encode({
        kind: { $case: 'error', value: { code: wire.KvErrorCode.KV_ERROR_CODE_UNSPECIFIED, message: '' } },
      }).finish(),
      new Uint8Array([0x1a, 0x02, 0x08, 0x63]), // error with code 99
    ];
    for (const b of bad) expect(catchError(() => decodeKvResult(b))).toBeInstanceOf(WireError);
  });
});

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

function isWellFormed(s: string): boolean {
  try {
    encodeURIComponent(s); // throws URIError on a lone surrogate
    return true;
  } catch {
    return false;
  }
}
