// The official client connects over every transport socket.io offers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { SERVER_URL, connect, login, waitFor } from './helpers.mjs';

async function roundTrip(socket) {
  const answer = await socket.timeout(5_000).emitWithAck('health');
  assert.equal(answer.status, 'OK');
}

test('long-polling only', async () => {
  const socket = await connect({ transports: ['polling'] });
  assert.equal(socket.io.engine.transport.name, 'polling');
  await roundTrip(socket);
  socket.close();
});

test('websocket only', async () => {
  const socket = await connect({ transports: ['websocket'] });
  assert.equal(socket.io.engine.transport.name, 'websocket');
  await roundTrip(socket);
  socket.close();
});

test('polling upgraded to websocket', async () => {
  const socket = io(SERVER_URL, { forceNew: true, reconnection: false });
  try {
    let opened;
    let upgradedTo;
    // The upgrade can finish before 'connect' fires on loopback: watch from the start.
    socket.io.on('open', () => {
      opened = socket.io.engine.transport.name;
      socket.io.engine.on('upgrade', (transport) => (upgradedTo = transport.name));
    });
    await waitFor(() => socket.connected, 5_000, 'connect');
    await waitFor(() => upgradedTo !== undefined, 5_000, 'upgrade');
    assert.equal(opened, 'polling');
    assert.equal(upgradedTo, 'websocket');
    await roundTrip(socket);
  } finally {
    socket.close();
  }
});

test('a token in the handshake is accepted, a bad one still connects as a visitor', async () => {
  const { accessToken } = await login();
  const admin = await connect({ auth: { token: accessToken } });
  await roundTrip(admin);
  const visitor = await connect({ auth: { token: 'forged.token.value' } });
  await roundTrip(visitor);
  admin.close();
  visitor.close();
});

test('a packet over the payload limit closes only that connection', async () => {
  const big = await connect({ transports: ['websocket'] });
  const bystander = await connect({ transports: ['websocket'] });
  const closed = new Promise((resolve) => big.once('disconnect', resolve));
  big.emit('health', 'x'.repeat(1_200_000));
  await closed;
  await roundTrip(bystander);
  bystander.close();
});
