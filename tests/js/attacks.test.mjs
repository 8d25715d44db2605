// switchboard-args: --socket-events-per-sec 1000 --socket-event-burst 1000
// The attacker's side of the socket flows, with the official client: client
// strings never name a server room, an admin socket loses its rights when its
// token expires, and short (guessable) live-chat session ids are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, nextEvent, collect, waitFor, sleep, login, api, signJwt } from './helpers.mjs';

const newSessionId = () => `session_${randomUUID()}`;

/** Every live-chat event an eavesdropper could hope to see. */
const ADMIN_BOUND = ['user-message', 'ai-reply', 'admin-reply', 'chat-list-update', 'handoff-requested', 'user-typing', 'ai-thinking', 'admin-typing', 'new_message', 'stream_chunk'];

function eavesdrop(socket) {
  const seen = [];
  for (const event of ADMIN_BOUND) socket.on(event, (payload) => seen.push({ event, payload }));
  return seen;
}

test('a visitor cannot name the admins room, another session or another socket', async () => {
  const { accessToken } = await login();
  const admin = await connect({ auth: { token: accessToken } });
  const victim = await connect();
  const attacker = await connect();
  const victimSession = newSessionId();
  try {
    const seen = eavesdrop(attacker);
    const errors = collect(attacker, 'chat-error');
    const streamErrors = collect(attacker, 'stream_error');
    // Every event that takes an id, with every name the server uses inside.
    const names = ['admins', 'livechat-admins', 'livechat-admins:x', 'socket', `socket:${victim.id}`, victim.id, admin.id, ':admins', 'livechat-session:' + victimSession];
    for (const name of names) {
      attacker.emit('user-connected', { sessionId: name });
      attacker.emit('user-message', { sessionId: name, message: 'hello?' });
      attacker.emit('user-typing', { sessionId: name, isTyping: true });
      attacker.emit('join_conversation', name);
      attacker.emit('join_conversation', { conversationId: name });
      attacker.emit('typing_start', { conversationId: name });
      attacker.emit('message_read', { conversationId: name, messageId: 'm1' });
      attacker.emit('stop_generation', { conversationId: name });
    }
    await sleep(300);
    const ownRows = seen.length;

    // The victim's conversation with the admin, and an assistant stream of the victim's.
    const atAdmin = nextEvent(admin, 'user-message');
    victim.emit('user-message', { sessionId: victimSession, message: 'my private question' });
    await atAdmin;
    const reply = nextEvent(victim, 'admin-reply');
    admin.emit('admin-reply', { sessionId: victimSession, message: 'a private answer' });
    await reply;
    victim.emit('user-typing', { sessionId: victimSession, isTyping: true });
    victim.emit('user-message', { sessionId: victimSession, message: 'I would like to talk to a human agent' });
    const done = nextEvent(victim, 'stream_complete', 10_000);
    victim.emit('stream_chat', { message: 'a private assistant question' });
    await done;
    await sleep(500);

    // The attacker's own sessions (one is named after the victim's room) may
    // still get their AI answers: those are not leaks.
    const leaked = seen
      .slice(ownRows)
      .filter(({ payload }) => !names.includes(payload?.sessionId))
      .filter(({ payload }) => JSON.stringify(payload ?? null).includes(victimSession) || JSON.stringify(payload ?? null).includes('private'));
    assert.deepEqual(leaked, [], 'nothing of the victim reaches the attacker');
    assert.equal(seen.slice(ownRows).filter(({ event }) => event === 'chat-list-update').length, 0, 'no admin list updates');
    assert.ok(errors.some((e) => e.code === 'INVALID_SESSION_ID'), 'names that are not session ids are refused');
    assert.equal(streamErrors.length, 0, 'open conversations: joining unknown ids is allowed and empty');
  } finally {
    admin.close();
    victim.close();
    attacker.close();
  }
});

test('a visitor cannot send admin events', async () => {
  const sessionId = newSessionId();
  const widget = await connect();
  const attacker = await connect();
  try {
    widget.emit('user-connected', { sessionId });
    await sleep(100);
    const replies = collect(widget, 'admin-reply');
    const errors = collect(attacker, 'chat-error');
    attacker.emit('admin-reply', { sessionId, message: 'I am the admin now' });
    attacker.emit('admin-typing', { sessionId, isTyping: true });
    attacker.emit('admin-release', { sessionId });
    attacker.emit('admin-takeover', { sessionId });
    await waitFor(() => errors.length === 4, 3_000, 'four refusals');
    assert.deepEqual(errors.map((e) => e.code), ['FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN']);
    assert.equal(replies.length, 0);
  } finally {
    widget.close();
    attacker.close();
  }
});

test('an admin socket whose token expires is told, demoted, and hears nothing more', async () => {
  const { user } = await login();
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt({ sub: String(user.id), email: user.email, admin: true, iat: now, exp: now + 3 });
  const admin = await connect({ auth: { token } });
  const widget = await connect();
  const sessionId = newSessionId();
  try {
    const first = nextEvent(admin, 'user-message');
    const expiry = nextEvent(admin, 'chat-error', 6_000);
    widget.emit('user-message', { sessionId, message: 'before expiry' });
    assert.equal((await first).message, 'before expiry');

    const expired = await expiry;
    assert.equal(expired.code, 'TOKEN_EXPIRED');
    const seen = eavesdrop(admin);
    widget.emit('user-message', { sessionId, message: 'after expiry' });
    await sleep(500);
    assert.deepEqual(seen.filter(({ event }) => event === 'user-message'), [], 'no rows after expiry');
    const refused = nextEvent(admin, 'chat-error');
    admin.emit('admin-reply', { sessionId, message: 'still here?' });
    assert.equal((await refused).code, 'FORBIDDEN');
  } finally {
    admin.close();
    widget.close();
  }
});

test('an expired admin token is refused at the next admin event even before the timer', async () => {
  const { user } = await login();
  const now = Math.floor(Date.now() / 1000);
  // Valid for the handshake (within the 2 s leeway), already expired for events.
  const token = signJwt({ sub: String(user.id), email: user.email, admin: true, iat: now - 60, exp: now - 1 });
  const admin = await connect({ auth: { token } });
  const sessionId = newSessionId();
  const widget = await connect();
  try {
    widget.emit('user-connected', { sessionId });
    await sleep(100);
    const errors = collect(admin, 'chat-error');
    admin.emit('admin-reply', { sessionId, message: 'late' });
    await waitFor(() => errors.length >= 1, 3_000, 'a refusal');
    assert.ok(['TOKEN_EXPIRED', 'FORBIDDEN'].includes(errors[0].code), JSON.stringify(errors));
  } finally {
    admin.close();
    widget.close();
  }
});

test('short session ids are refused on the socket and over REST', async () => {
  const widget = await connect();
  try {
    const errors = collect(widget, 'chat-error');
    widget.emit('user-message', { sessionId: 'a', message: 'hi' });
    widget.emit('user-connected', { sessionId: '1234567' });
    await waitFor(() => errors.length === 2, 3_000, 'two refusals');
    assert.deepEqual(errors.map((e) => e.code), ['INVALID_SESSION_ID', 'INVALID_SESSION_ID']);
    const read = await api('/api/messages/a');
    assert.equal(read.status, 400);
    assert.equal(read.body.code, 'INVALID_SESSION_ID');
    const created = await api('/api/chats', { method: 'POST', body: { sessionId: 'abc' } });
    assert.equal(created.status, 400);
  } finally {
    widget.close();
  }
});
