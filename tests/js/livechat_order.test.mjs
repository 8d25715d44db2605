// switchboard-args: --socket-events-per-sec 10000 --socket-event-burst 10000
// Per-session order under concurrent senders, at a volume where handling a
// socket's events out of order shows: with each event spawned on its own (no
// per-socket queue), senders' messages were reordered in every run here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SERVER_URL, connect, collect, waitFor, login } from './helpers.mjs';

const SENDERS = 3;
const PER_SENDER = 300;

async function api(path, token, method = 'GET', body) {
  const response = await fetch(`${SERVER_URL}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.json();
}

test(`${SENDERS} senders × ${PER_SENDER} messages: one stored order, seen by every listener, each sender's order kept`, async () => {
  const sessionId = `session_${randomUUID()}`;
  const { accessToken } = await login();
  await api('/api/ai/toggle', accessToken, 'POST', { isEnabled: false });
  const admin = await connect({ auth: { token: accessToken }, transports: ['websocket'] });
  const senders = await Promise.all(Array.from({ length: SENDERS }, () => connect({ transports: ['websocket'] })));
  try {
    const seen = collect(admin, 'user-message');
    senders.forEach((socket, s) => {
      for (let i = 0; i < PER_SENDER; i += 1) socket.emit('user-message', { sessionId, message: `s${s}-m${i}` });
    });
    await waitFor(() => seen.length === SENDERS * PER_SENDER, 30_000, 'all messages at the admin');
    const ids = seen.map((row) => row.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'admins receive messages in stored order');
    for (let s = 0; s < SENDERS; s += 1) {
      const mine = seen.filter((row) => row.message.startsWith(`s${s}-`)).map((row) => row.message);
      assert.deepEqual(mine, Array.from({ length: PER_SENDER }, (_, i) => `s${s}-m${i}`), `sender ${s} keeps its order`);
    }
  } finally {
    admin.close();
    senders.forEach((socket) => socket.close());
  }
});
