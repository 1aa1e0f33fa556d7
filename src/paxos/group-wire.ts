// The peer stream's codecs. A group server's messages: Paxos messages and the
// exactly-once layer's client messages share one PeerMessage union. A node's
// messages: those, each tagged with the group whose replica it is for.
import { groupId } from '../core/ids.js';
import type { PeerMessage } from '../gen/shardpax/v1/peer.js';
import { rpcFromWire, rpcToWire, WireError } from '../rpc/codec.js';
import { paxosFromWire, paxosToWire } from './codec.js';
import type { NodeMessage } from './group-env.js';
import type { GroupMessage } from './group-server.js';

export const groupWireCodec = {
  toWire(m: GroupMessage): PeerMessage {
    if (m.type === 'ClientCommand' || m.type === 'ClientResult') return rpcToWire(m);
    if (m.type === 'HostMessage') return { body: { $case: 'host', value: m.body } };
    return { body: { $case: 'paxos', value: paxosToWire(m) } };
  },
  fromWire(w: PeerMessage): GroupMessage {
    if (w.body?.$case === 'paxos') return paxosFromWire(w.body.value);
    if (w.body?.$case === 'host') return { type: 'HostMessage', body: w.body.value };
    return rpcFromWire(w);
  },
};

export const nodeWireCodec = {
  toWire(m: NodeMessage<GroupMessage>): PeerMessage {
    return { ...groupWireCodec.toWire(m.message), group: m.group };
  },
  /** Any uint32 is a group id here: the receiving node drops one it does not host (GroupMux). */
  fromWire(w: PeerMessage): NodeMessage<GroupMessage> {
    if (w.group === undefined) throw new WireError('PeerMessage without a group');
    return { group: groupId(w.group), message: groupWireCodec.fromWire(w) };
  },
};
