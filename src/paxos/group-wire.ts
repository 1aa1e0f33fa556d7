// The peer stream's codec for a group server's messages: Paxos messages and
// the exactly-once layer's client messages share one PeerMessage union.
import type { PeerMessage } from '../gen/shardpax/v1/peer.js';
import { paxosFromWire, paxosToWire } from './codec.js';
import { rpcFromWire, rpcToWire } from '../rpc/codec.js';
import type { GroupMessage } from './group-server.js';

export const groupWireCodec = {
  toWire(m: GroupMessage): PeerMessage {
    if (m.type === 'ClientCommand' || m.type === 'ClientResult') return rpcToWire(m);
    return { body: { $case: 'paxos', value: paxosToWire(m) } };
  },
  fromWire(w: PeerMessage): GroupMessage {
    if (w.body?.$case === 'paxos') return paxosFromWire(w.body.value);
    return rpcFromWire(w);
  },
};
