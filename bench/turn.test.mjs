import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notRelayed } from './turn.mjs';

const PORTS = [40000, 40099];
const relayed = {
  transport: 'webrtc',
  policy: 'relay',
  local: { type: 'relay', address: '127.0.0.1', port: 40002, relayProtocol: 'udp' },
  remote: { type: 'host', address: '127.0.0.1', port: 18000 },
};

test('notRelayed: a pair through this coturn over UDP passes', () => {
  assert.equal(notRelayed(relayed, PORTS), null);
});

test('notRelayed: everything else says why', () => {
  const local = (l) => ({ ...relayed, local: { ...relayed.local, ...l } });
  assert.match(notRelayed({ ...relayed, transport: 'websocket' }, PORTS), /over websocket, not WebRTC/);
  assert.match(notRelayed({ ...relayed, local: null }, PORTS), /no selected candidate pair/);
  assert.match(notRelayed(local({ type: 'host' }), PORTS), /type host, not relay/);
  assert.match(notRelayed(local({ type: 'srflx' }), PORTS), /type srflx, not relay/);
  assert.match(notRelayed(local({ port: 50000 }), PORTS), /not one of this coturn's/);
  assert.match(notRelayed(local({ address: '10.0.0.1' }), PORTS), /not one of this coturn's/);
  assert.match(notRelayed(local({ relayProtocol: 'tcp' }), PORTS), /over tcp, not UDP/);
});
