// Bounds on the numbers and sizes of Paxos messages from the network. They
// sit far above anything an honest node reaches, and far enough below
// Number.MAX_SAFE_INTEGER that a role's arithmetic on them (a ballot's
// round + 1, a slot + a window) stays exact: a message past one is invalid
// and dropped at decode (codec.ts), never handed to a role.

/** A new ballot per election: 2^40 elections is over 7,000 years at 200 ms each. */
export const MAX_ROUND = 2 ** 40;
/** 2^48 slots is 890 years at 10,000 slots a second. */
export const MAX_SLOT = 2 ** 48;
/** Commands in one slot's batch or one Propose; a leader's `maxBatch` may not exceed it. */
export const MAX_BATCH_COMMANDS = 4096;
/** Characters of a storage key in a state transfer (a KV key is at most 1 KiB of UTF-8, plus a short prefix). */
export const MAX_TRANSFER_KEY_CHARS = 4096;
