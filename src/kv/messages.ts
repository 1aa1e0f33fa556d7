// Domain types of the replicated key-value application (DESIGN.md 2.2, 2.4).
// The wire types in src/gen stay at the boundary; src/kv/codec.ts maps between
// the two.

/** Why a command was refused; the wire's KvErrorCode without its prefix. */
export type KvErrorCodeName = 'MALFORMED_COMMAND' | 'EMPTY_KEY' | 'KEY_TOO_LARGE' | 'VALUE_TOO_LARGE';

export type KvCommand =
  | { readonly kind: 'get'; readonly key: string }
  | { readonly kind: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly kind: 'delete'; readonly key: string };

export type KvResult =
  /** Answer to a get: `undefined` when the key is absent (an empty value is present). */
  | { readonly kind: 'value'; readonly value: Uint8Array | undefined }
  /** Answer to a put or a delete. */
  | { readonly kind: 'done' }
  /** The command was refused and changed nothing. */
  | { readonly kind: 'error'; readonly code: KvErrorCodeName; readonly message: string };
