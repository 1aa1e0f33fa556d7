// Exact bytes in and out of `shardpax put/get/del`. Node decodes argv as
// UTF-8 before we see it and turns invalid bytes into U+FFFD, so `bad\xff`
// and `bad\xfe` would arrive as the same key: a plain argument holding U+FFFD
// is refused, and --hex/--base64 carry any bytes. Values may also come from a
// file or stdin (an argument list cannot hold 1 MiB). Keys are text on the
// wire (UTF-8), so an encoded key must decode to valid UTF-8; values are any
// bytes.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { MAX_VALUE_BYTES } from '../kv/limits.js';
import { CliError } from './cli-error.js';

/** How key and value arguments are written on the command line, and how `get` prints a value. */
export type ArgEncoding = 'text' | 'hex' | 'base64';

/** Where a put's value comes from: exactly one of these. */
export type ValueSource =
  | { readonly kind: 'argument'; readonly text: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stdin' };

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The one source a put's value comes from, given its optional argument and flags. */
export function valueSource(arg: string | undefined, o: { readonly valueFile?: string; readonly stdin?: boolean }): ValueSource {
  const sources: ValueSource[] = [];
  if (arg !== undefined) sources.push({ kind: 'argument', text: arg });
  if (o.valueFile !== undefined) sources.push({ kind: 'file', path: o.valueFile });
  if (o.stdin === true) sources.push({ kind: 'stdin' });
  const [only] = sources;
  if (only === undefined) throw new CliError('put needs a value: an argument, --value-file <path> or --stdin');
  if (sources.length > 1) throw new CliError('put takes one value: an argument, --value-file <path> or --stdin, not several');
  return only;
}

export function encodingOf(o: { readonly hex?: boolean; readonly base64?: boolean }): ArgEncoding {
  return o.hex === true ? 'hex' : o.base64 === true ? 'base64' : 'text';
}

/** The key an argument names. */
export function keyFromArg(arg: string, encoding: ArgEncoding): string {
  if (encoding === 'text') return refuseReplacement(arg, 'key');
  try {
    // ignoreBOM: a leading EF BB BF is part of the key, not a marker to drop.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytesFromArg(arg, encoding, 'key'));
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`the key ${arg} (${encoding}) is not valid UTF-8: keys are text (values can be any bytes)`);
  }
}

export async function readValue(source: ValueSource, encoding: ArgEncoding): Promise<Uint8Array> {
  switch (source.kind) {
    case 'argument':
      return encoding === 'text' ? new TextEncoder().encode(refuseReplacement(source.text, 'value')) : bytesFromArg(source.text, encoding, 'value');
    case 'file':
      return readAtMost(createReadStream(source.path), `--value-file ${source.path}`);
    case 'stdin':
      return readAtMost(process.stdin, 'stdin');
  }
}

/** What `get` writes to stdout: the exact bytes, or their hex/base64 text on one line. */
export function formatValue(value: Uint8Array, encoding: ArgEncoding): Uint8Array | string {
  if (encoding === 'text') return value;
  return `${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString(encoding)}\n`;
}

function bytesFromArg(arg: string, encoding: 'hex' | 'base64', what: string): Uint8Array {
  const ok = encoding === 'hex' ? HEX.test(arg) : BASE64.test(arg);
  if (!ok) {
    const form = encoding === 'hex' ? 'pairs of the digits 0-9 and a-f' : 'standard base64 (A-Z a-z 0-9 + /, padded with =)';
    throw new CliError(`the ${what} argument ${JSON.stringify(arg)} is not ${encoding}: with --${encoding} it must be ${form}`);
  }
  return Buffer.from(arg, encoding);
}

function refuseReplacement(arg: string, what: 'key' | 'value'): string {
  if (arg.includes('\uFFFD')) {
    throw new CliError(
      `the ${what} argument holds U+FFFD: the shell passed bytes that are not UTF-8, which Node replaces with U+FFFD, ` +
        `so different ${what}s would collide. Give the ${what} with --hex or --base64` +
        (what === 'value' ? ', or its bytes with --value-file <path> or --stdin' : ''),
    );
  }
  return arg;
}

/** All of `stream`, refused once it passes the value limit (so a huge file is not read whole first). */
async function readAtMost(stream: Readable, source: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      total += buffer.byteLength;
      if (total > MAX_VALUE_BYTES) {
        stream.destroy();
        throw new CliError(`the value from ${source} is over ${MAX_VALUE_BYTES} bytes, the limit for a value`);
      }
      chunks.push(buffer);
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read the value from ${source}: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks, total);
}
