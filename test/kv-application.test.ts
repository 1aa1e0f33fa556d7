// Unit and property tests of the replicated KV application (DESIGN.md 2.2,
// 2.4), driven through the same byte codec the replicas see.
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
} from '../src/kv/limits.js';
import type { KvCommand, KvErrorCodeName, KvResult } from '../src/kv/messages.js';
import { AmoApplication } from '../src/rpc/amo-application.js';
import { WireError } from '../src/rpc/codec.js';

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

function run(app: KvApplication, command: KvCommand): KvResult {
  return decodeKvResult(app.apply(encodeKvCommand(command)));
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

function stateOf(app: KvApplication): Uint8Array {
  return app.snapshot();
}

describe('KvApplication: get, put, delete', () => {
  it('round-trips put, get, overwrite and delete through the codec', () => {
    const app = new KvApplication();
    expect(run(app, put('a', 'one'))).toEqual({ kind: 'done' });
    expect(run(app, get('a'))).toEqual({ kind: 'value', value: bytes('one') });
    expect(run(app, put('a', 'two'))).toEqual({ kind: 'done' });
    expect(run(app, get('a'))).toEqual({ kind: 'value', value: bytes('two') });
    expect(run(app, del('a'))).toEqual({ kind: 'done' });
    expect(run(app, get('a'))).toEqual({ kind: 'value', value: undefined });
    expect(run(app, del('a'))).toEqual({ kind: 'done' }); // deleting an absent key is not an error
    expect(app.size()).toBe(0);
  });

  it('tells an absent key (found=false) from a present empty value (found=true, 0 bytes)', () => {
    const app = new KvApplication();
    run(app, put('empty', new Uint8Array()));
    expect(run(app, get('empty'))).toEqual({ kind: 'value', value: new Uint8Array() });
    expect(run(app, get('absent'))).toEqual({ kind: 'value', value: undefined });
    const onWire = (key: string) => wire.KvResult.decode(app.apply(encodeKvCommand(get(key)))).kind;
    expect(onWire('empty')).toEqual({ $case: 'value', value: { found: true, value: new Uint8Array() } });
    expect(onWire('absent')).toEqual({ $case: 'value', value: { found: false, value: new Uint8Array() } });
  });

  it('keeps its own copy of a put value, not a view of the command buffer', () => {
    const app = new KvApplication();
    const command = encodeKvCommand(put('k', 'abc'));
    app.apply(command);
    command.fill(0x7a);
    expect(app.get('k')).toEqual(bytes('abc'));
    app.get('k')?.fill(0); // get() hands out a copy too
    expect(app.get('k')).toEqual(bytes('abc'));
  });

  it('takes unicode keys, distinct by code point', () => {
    const app = new KvApplication();
    run(app, put('ключ', '1'));
    run(app, put('🔑', '2'));
    run(app, put('e\u0301', '3')); // not normalized: distinct from 'é'
    expect(run(app, get('ключ'))).toEqual({ kind: 'value', value: bytes('1') });
    expect(run(app, get('🔑'))).toEqual({ kind: 'value', value: bytes('2') });
    expect(run(app, get('é'))).toEqual({ kind: 'value', value: undefined });
  });
});

describe('KvApplication: limits', () => {
  const atKeyLimit = 'k'.repeat(MAX_KEY_BYTES);
  const pastKeyLimit = 'k'.repeat(MAX_KEY_BYTES + 1);
  // 342 three-byte characters: under the limit in UTF-16 units, over it in UTF-8 bytes.
  const wideKey = '€'.repeat(342);

  it('accepts a key and a value exactly at the limits', () => {
    const app = new KvApplication();
    expect(run(app, put(atKeyLimit, new Uint8Array(MAX_VALUE_BYTES)))).toEqual({ kind: 'done' });
    expect(app.get(atKeyLimit)?.byteLength).toBe(MAX_VALUE_BYTES);
  });

  it('refuses oversized keys on every command, counting UTF-8 bytes, and changes nothing', () => {
    const app = new KvApplication();
    run(app, put('keep', 'v'));
    const before = stateOf(app);
    for (const key of [pastKeyLimit, wideKey]) {
      for (const command of [put(key, 'v'), get(key), del(key)]) {
        expect(errorCode(run(app, command))).toBe('KEY_TOO_LARGE');
      }
    }
    expect(stateOf(app)).toEqual(before);
  });

  it('refuses an oversized value and keeps the old one', () => {
    const app = new KvApplication();
    run(app, put('k', 'old'));
    const r = run(app, put('k', new Uint8Array(MAX_VALUE_BYTES + 1)));
    expect(r).toEqual({
      kind: 'error',
      code: 'VALUE_TOO_LARGE',
      message: `value is ${MAX_VALUE_BYTES + 1} bytes; the limit is ${MAX_VALUE_BYTES}`,
    });
    expect(app.get('k')).toEqual(bytes('old'));
  });

  it('refuses the empty key on every command', () => {
    const app = new KvApplication();
    for (const command of [put('', 'v'), get(''), del('')]) expect(errorCode(run(app, command))).toBe('EMPTY_KEY');
    expect(app.size()).toBe(0);
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
    const app = new KvApplication();
    run(app, put('keep', 'v'));
    const before = stateOf(app);
    const r = decodeKvResult(app.apply(input));
    expect(errorCode(r)).toBe('MALFORMED_COMMAND');
    expect(stateOf(app)).toEqual(before);
  });

  it('never throws on arbitrary bytes, and answers with a decodable result', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (input) => {
        const app = new KvApplication();
        const r = decodeKvResult(app.apply(input));
        expect(['value', 'done', 'error']).toContain(r.kind);
        app.checkInvariants();
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

describe('KvApplication: snapshot and restore', () => {
  const pairs: [string, string][] = [
    ['b', '2'],
    ['a', '1'],
    ['ключ', '3'],
    ['🔑', '4'],
    ['\uffff', '5'],
    ['empty', ''],
  ];

  it('restores identical state, and snapshots are byte-identical whatever the insertion order', () => {
    const forward = new KvApplication();
    const backward = new KvApplication();
    for (const [k, v] of pairs) run(forward, put(k, v));
    for (const [k, v] of [...pairs].reverse()) run(backward, put(k, v));
    expect(forward.snapshot()).toEqual(backward.snapshot());

    const restored = new KvApplication();
    restored.restore(forward.snapshot());
    expect(restored.size()).toBe(pairs.length);
    for (const [k, v] of pairs) expect(run(restored, get(k))).toEqual({ kind: 'value', value: bytes(v) });
    expect(restored.snapshot()).toEqual(forward.snapshot());
  });

  it('replaces the whole state on restore and does not alias the snapshot buffer', () => {
    const source = new KvApplication();
    run(source, put('x', 'from snapshot'));
    const snapshot = source.snapshot();
    const app = new KvApplication();
    run(app, put('stale', 'gone after restore'));
    app.restore(snapshot);
    snapshot.fill(0);
    expect(app.get('stale')).toBeUndefined();
    expect(app.get('x')).toEqual(bytes('from snapshot'));
  });

  it('refuses a corrupt or unsorted snapshot with a WireError and keeps its state', () => {
    const app = new KvApplication();
    run(app, put('keep', 'v'));
    const before = stateOf(app);
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
    const emptyKey = wire.KvSnapshot.encode({ entries: [{ key: '', value: bytes('1') }] }).finish();
    for (const bad of [new Uint8Array([0xff, 0xff, 0xff]), unsorted, duplicate, emptyKey]) {
      expect(catchError(() => app.restore(bad))).toBeInstanceOf(WireError);
    }
    expect(stateOf(app)).toEqual(before);
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

  it('answers and ends like the model; a replica restored midway ends identical', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 60 }), fc.nat(), (commands, cut) => {
        const app = new KvApplication();
        const model = new Map<string, Uint8Array>();
        const split = commands.length === 0 ? 0 : cut % commands.length;
        const late = new KvApplication();
        commands.forEach((c, i) => {
          if (i === split) late.restore(app.snapshot());
          const r = run(app, c);
          expect(r).toEqual(modelApply(model, c));
          if (i >= split) expect(run(late, c)).toEqual(r);
        });
        app.checkInvariants();
        expect(app.size()).toBe(model.size);
        for (const [k, v] of model) expect(app.get(k)).toEqual(v);
        expect(app.snapshot()).toEqual(encodeKvSnapshot(model));
        if (commands.length > 0) expect(late.snapshot()).toEqual(app.snapshot());
      }),
      { numRuns: 300 },
    );
  });
});

describe('KvApplication behind the exactly-once wrapper', () => {
  it('applies a retried put once: a duplicate after a delete does not resurrect the key', () => {
    const kv = new KvApplication();
    const amo = new AmoApplication(kv);
    const reg = amo.apply({ kind: 'register', nonce: 1 });
    if (reg.kind !== 'registered') throw new Error('expected registered');
    const request = (session: SessionId, s: number, command: KvCommand) =>
      amo.apply({ kind: 'request', session, seq: seq(s), ackedBelow: seq(0), command: encodeKvCommand(command) });
    request(reg.session, 0, put('k', 'v'));
    request(reg.session, 1, del('k'));
    const retried = request(reg.session, 0, put('k', 'v'));
    expect(retried.kind).toBe('result');
    if (retried.kind === 'result') expect(decodeKvResult(retried.result)).toEqual({ kind: 'done' });
    expect(kv.get('k')).toBeUndefined();
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
