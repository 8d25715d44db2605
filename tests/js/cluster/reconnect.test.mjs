// Nothing missed across reconnects on two nodes: the visitors' network drops
// every 3 s and each reconnect lands on the other node (see ../flapping.mjs);
// then a visitor whose node is killed comes back on the survivor. Run by
// `tests/cluster.rs` (one PostgreSQL database, the Redis adapter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import { flap } from '../flapping.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, nextEvent, sleep } from '../helpers.mjs';

const targets = process.env.SWITCHBOARD_URLS.split(',');

async function adminToken() {
  const response = await fetch(`${targets[0]}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  return (await response.json()).accessToken;
}

async function aiOff(token) {
  const response = await fetch(`${targets[0]}/api/ai/config`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ isEnabled: false }),
  });
  assert.equal(response.status, 200);
}

async function connectedTo(url) {
  const socket = io(url, { forceNew: true, reconnection: false });
  await nextEvent(socket, 'connect');
  return socket;
}

test('a flapping network across two nodes: every reply reaches the visitors, once, in order', async () => {
  const token = await adminToken();
  await aiOff(token);
  await flap({ targets, token });
});

// The instant a socket rejoins is the one where a reply stored on the other
// node could reach it twice (in its catch-up and live) or not at all: here
// the admin replies every few milliseconds on one node while the visitor
// comes back again and again, alternately on each node, naming the newest
// row it has, and leaves as soon as a reply reaches it.
test('rejoining either node while replies stream: each reply once, in order', async () => {
  const token = await adminToken();
  await aiOff(token);
  const agent = io(targets[0], { forceNew: true, auth: { token } });
  await nextEvent(agent, 'connect');
  const sessionId = `rejoin_${randomUUID()}`;
  const first = await connectedTo(targets[1]);
  const stored = nextEvent(first, 'message-received');
  first.emit('user-message', { sessionId, message: 'hello' });
  let newest = (await stored).id;
  first.close();

  let replying = true;
  let sent = 0;
  const errors = [];
  agent.on('chat-error', (error) => errors.push(error));
  const replies = (async () => {
    while (replying) {
      sent += 1;
      agent.emit('admin-reply', { sessionId, message: `reply ${sent}` });
      await sleep(4);
    }
  })();
  const received = [];
  const rejoin = async (url, until) => {
    const socket = await connectedTo(url);
    const done = new Promise((resolve) => {
      socket.on('admin-reply', (row) => {
        received.push(row.id);
        newest = Math.max(newest, row.id);
        if (until(row)) resolve();
      });
    });
    socket.emit('user-connected', { sessionId, lastMessageId: newest });
    return { socket, done };
  };
  for (let round = 0; round < 80; round += 1) {
    const { socket, done } = await rejoin(targets[round % 2], () => true);
    await done;
    socket.close();
  }
  replying = false;
  await replies;
  const last = await rejoin(targets[1], (row) => row.message === 'the end');
  agent.emit('admin-reply', { sessionId, message: 'the end' });
  await last.done;
  last.socket.close();
  agent.close();

  assert.deepEqual(errors, [], 'every admin reply was accepted');
  const response = await fetch(`${targets[0]}/api/messages/${sessionId}`);
  const rows = (await response.json()).filter((row) => row.senderType === 'admin');
  assert.equal(rows.length, sent + 1);
  assert.deepEqual(received, rows.map((row) => row.id), 'every reply once, in the order stored');
});
