// The transport port (STYLE.md 4): best-effort, unordered delivery of protocol
// messages between nodes. Protocols tolerate loss, duplication and reordering,
// so a transport may do any of those; it never corrupts a message.
import type { NodeId } from './ids.js';

export interface Transport<M> {
  /** Queues messages for `to`; they may be lost. Never throws for an unreachable peer. */
  send(to: NodeId, messages: readonly M[]): void;
  /** Sets the one receiver of every incoming message. */
  onReceive(handler: (from: NodeId, message: M) => void): void;
  close(): Promise<void>;
}
