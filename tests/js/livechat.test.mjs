// Live chat (SPEC §4) with the official client: the widget's and the admin
// console's journeys, hand-off, the admin-takes-over race, and the attacker's side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, nextEvent, collect, waitFor, waitForAsync, sleep, login, api, signJwt } from './helpers.mjs';

const newSessionId = () => `session_${randomUUID()}`;

async function adminSocket() {
  const { accessToken } = await login();
  return { socket: await connect({ auth: { token: accessToken } }), token: accessToken };
}

function assertRow(row, sessionId, senderType, message) {
  assert.deepEqual(Object.keys(row).sort(), ['id', 'isRead', 'message', 'senderType', 'sessionId', 'timestamp']);
  assert.equal(row.sessionId, sessionId);
  assert.equal(row.senderType, senderType);
  if (message !== undefined) assert.equal(row.message, message);
  assert.equal(typeof row.id, 'number');
  assert.equal(row.isRead, false);
  assert.ok(!Number.isNaN(Date.parse(row.timestamp)), 'ISO-8601 timestamp');
}

test('widget journey: connect twice, send, receipt, AI reply with thinking on and off', async () => {
  const sessionId = newSessionId();
  const widget = await connect();
  try {
    widget.emit('user-connected', { sessionId, userAgent: 'test-widget' });
    widget.emit('user-connected', { sessionId, userAgent: 'test-widget' });
    const thinking = collect(widget, 'ai-thinking');
    const received = nextEvent(widget, 'message-received');
    const reply = nextEvent(widget, 'ai-reply');
    widget.emit('user-message', { sessionId, message: 'What are your opening hours?', timestamp: new Date().toISOString() });
    const { id } = await received;
    assert.equal(typeof id, 'number');
    const row = await reply;
    assertRow(row, sessionId, 'ai', 'Mock reply: What are your opening hours?');
    await waitFor(() => thinking.length === 2, 2_000, 'ai-thinking off');
    assert.deepEqual(thinking, [
      { sessionId, isThinking: true },
      { sessionId, isThinking: false },
    ]);

    const history = await api(`/api/messages/${sessionId}`);
    assert.equal(history.status, 200);
    assert.deepEqual(history.body.map((m) => m.senderType), ['user', 'ai']);
    assert.equal(history.body[0].id, id);
  } finally {
    widget.close();
  }
});

test('the AI sees the conversation and the configured system prompt', async () => {
  const sessionId = newSessionId();
  const { token, socket: admin } = await adminSocket();
  admin.close();
  const prompt = `You are the support bot ${randomUUID()}`;
  const put = await api('/api/ai/config', { token, method: 'PUT', body: { systemPrompt: prompt } });
  assert.equal(put.status, 200);
  const widget = await connect();
  try {
    widget.emit('user-message', { sessionId, message: 'first question' });
    await nextEvent(widget, 'ai-reply');
    widget.emit('user-message', { sessionId, message: 'second question' });
    await nextEvent(widget, 'ai-reply');
    const requests = await (await fetch(`${process.env.MOCK_AI_URL.replace(/\/v1$/, '')}/__mock/requests`)).json();
    const last = requests.at(-1).body.messages;
    assert.deepEqual(last[0], { role: 'system', content: prompt });
    assert.deepEqual(
      last.slice(1).map((m) => [m.role, m.content]),
      [
        ['user', 'first question'],
        ['assistant', 'Mock reply: first question'],
        ['user', 'second question'],
      ],
    );
  } finally {
    widget.close();
  }
});

test('admin journey: login, user-message, admin-reply, typing both ways, read marking', async () => {
  const sessionId = newSessionId();
  const { socket: admin, token } = await adminSocket();
  const widget = await connect();
  try {
    widget.emit('user-connected', { sessionId });
    // Both can arrive in one long-polling payload: listen for both first.
    const incoming = nextEvent(admin, 'user-message');
    const aiReply = nextEvent(admin, 'ai-reply');
    widget.emit('user-message', { sessionId, message: 'hello support' });
    const row = await incoming;
    assertRow(row, sessionId, 'user', 'hello support');
    await aiReply;

    const typingAtAdmin = nextEvent(admin, 'user-typing');
    widget.emit('user-typing', { sessionId, isTyping: true });
    assert.deepEqual(await typingAtAdmin, { sessionId, isTyping: true });

    const typingAtWidget = nextEvent(widget, 'admin-typing');
    admin.emit('admin-typing', { sessionId, isTyping: true });
    assert.deepEqual(await typingAtWidget, { sessionId, isTyping: true });

    const atWidget = nextEvent(widget, 'admin-reply');
    const atAdmin = nextEvent(admin, 'admin-reply');
    const listUpdate = nextEvent(admin, 'chat-list-update');
    admin.emit('admin-reply', { sessionId, message: 'Hi, this is Sam from support' });
    assertRow(await atWidget, sessionId, 'admin', 'Hi, this is Sam from support');
    assertRow(await atAdmin, sessionId, 'admin', 'Hi, this is Sam from support');
    await listUpdate;

    const chat = await api(`/api/chats/${sessionId}`, { token });
    assert.equal(chat.status, 200);
    assert.equal(chat.body.handedOffToAdmin, true);
    const marked = await api(`/api/messages/${row.id}`, { token, method: 'PATCH' });
    assert.equal(marked.status, 200);
    assert.equal(marked.body.isRead, true);
    assert.equal(marked.body.id, row.id);
  } finally {
    admin.close();
    widget.close();
  }
});

test('hand-off on "I would like to talk to a human agent": no AI again until released', async () => {
  const sessionId = newSessionId();
  const { socket: admin, token } = await adminSocket();
  const widget = await connect();
  try {
    const aiReplies = collect(widget, 'ai-reply');
    const handoff = nextEvent(admin, 'handoff-requested');
    widget.emit('user-message', { sessionId, message: 'I would like to talk to a human agent' });
    assert.deepEqual(await handoff, { sessionId });
    await waitFor(() => aiReplies.length === 1, 3_000, 'hand-off notice');
    assert.equal(aiReplies[0].senderType, 'ai');
    assert.match(aiReplies[0].message, /Connecting you to our support team/);

    const forwarded = nextEvent(admin, 'user-message');
    widget.emit('user-message', { sessionId, message: 'are you there?' });
    await forwarded;
    await sleep(500);
    assert.equal(aiReplies.length, 1, 'the AI stays silent while handed off');

    const released = await api(`/api/chats/${sessionId}/release`, { token, method: 'POST' });
    assert.equal(released.status, 200);
    assert.equal(released.body.handedOffToAdmin, false);
    widget.emit('user-message', { sessionId, message: 'back to the bot' });
    await waitFor(() => aiReplies.length === 2, 3_000, 'AI answers after release');
    assert.equal(aiReplies[1].message, 'Mock reply: back to the bot');

    // admin-release over the socket works the same way.
    widget.emit('user-message', { sessionId, message: 'real person please' });
    await waitFor(() => aiReplies.length === 3, 3_000, 'second hand-off notice');
    // The hand-off's own chat-list-update may still be on its way: wait for
    // the release itself, not for the next update.
    admin.emit('admin-release', { sessionId });
    await waitForAsync(
      async () => (await api(`/api/chats/${sessionId}`, { token })).body.handedOffToAdmin === false,
      5_000,
      'admin-release applied',
    );
    widget.emit('user-message', { sessionId, message: 'bot again' });
    await waitFor(() => aiReplies.length === 4, 3_000, 'AI answers after admin-release');
  } finally {
    admin.close();
    widget.close();
  }
});

test('an admin reply while the AI is generating discards the AI answer', async () => {
  const sessionId = newSessionId();
  const { socket: admin, token } = await adminSocket();
  const widget = await connect();
  try {
    const aiReplies = collect(widget, 'ai-reply');
    const thinking = collect(widget, 'ai-thinking');
    widget.emit('user-message', { sessionId, message: 'slow question [[mock:first-byte-delay=1500]]' });
    await waitFor(() => thinking.length === 1, 3_000, 'ai-thinking on');
    const adminReply = nextEvent(widget, 'admin-reply');
    admin.emit('admin-reply', { sessionId, message: 'A human here, I will take it' });
    await adminReply;
    await waitFor(() => thinking.length === 2, 5_000, 'ai-thinking off');
    assert.equal(thinking[1].isThinking, false);
    await sleep(300);
    assert.equal(aiReplies.length, 0, 'no AI reply after the admin took over');
    const chat = await api(`/api/chats/${sessionId}`, { token });
    assert.deepEqual(chat.body.messages.map((m) => m.senderType), ['user', 'admin']);
  } finally {
    admin.close();
    widget.close();
  }
});

test('a failing AI provider: chat-error to the widget, thinking switched off, socket stays up', async () => {
  const sessionId = newSessionId();
  const widget = await connect();
  try {
    const thinking = collect(widget, 'ai-thinking');
    const error = nextEvent(widget, 'chat-error', 10_000);
    widget.emit('user-message', { sessionId, message: 'boom [[mock:status=500]]' });
    const { code, message } = await error;
    assert.equal(code, 'AI_PROVIDER_ERROR');
    assert.ok(message.length > 0);
    await waitFor(() => thinking.length === 2, 3_000, 'ai-thinking off');
    assert.equal(thinking[1].isThinking, false);
    assert.equal((await widget.timeout(2_000).emitWithAck('health')).status, 'OK');
  } finally {
    widget.close();
  }
});

test('AI switched off: messages reach admins and nobody answers', async () => {
  const sessionId = newSessionId();
  const { socket: admin, token } = await adminSocket();
  const widget = await connect();
  try {
    const off = await api('/api/ai/toggle', { token, method: 'POST', body: { isEnabled: false } });
    assert.equal(off.body.isEnabled, false);
    const aiReplies = collect(widget, 'ai-reply');
    const forwarded = nextEvent(admin, 'user-message');
    widget.emit('user-message', { sessionId, message: 'anyone?' });
    await forwarded;
    await sleep(400);
    assert.equal(aiReplies.length, 0);
    // Hand-off still works with the AI off.
    widget.emit('user-message', { sessionId, message: 'I would like to talk to a human agent' });
    await waitFor(() => aiReplies.length === 1, 3_000, 'hand-off notice with AI off');
    assert.match(aiReplies[0].message, /Connecting you to our support team/);
  } finally {
    await api('/api/ai/toggle', { token: (await login()).accessToken, method: 'POST', body: { isEnabled: true } });
    admin.close();
    widget.close();
  }
});

test('bad payloads answer chat-error and store nothing; the socket stays connected', async () => {
  const sessionId = newSessionId();
  const widget = await connect();
  try {
    const errors = collect(widget, 'chat-error');
    widget.emit('user-message', { message: 'no session' });
    widget.emit('user-message', { sessionId, message: 42 });
    widget.emit('user-message', { sessionId, message: '   ' });
    widget.emit('user-message', { sessionId, message: 'x'.repeat(5_001) });
    widget.emit('user-message', 'just a string');
    widget.emit('user-message');
    widget.emit('user-connected', { sessionId: 'has spaces in it' });
    widget.emit('user-typing', { sessionId, isTyping: 'yes' });
    await waitFor(() => errors.length === 8, 3_000, 'eight chat-errors');
    assert.deepEqual(
      errors.map((e) => e.code),
      [
        'INVALID_PAYLOAD',
        'INVALID_PAYLOAD',
        'EMPTY_MESSAGE',
        'MESSAGE_TOO_LONG',
        'INVALID_PAYLOAD',
        'INVALID_PAYLOAD',
        'INVALID_SESSION_ID',
        'INVALID_PAYLOAD',
      ],
    );
    for (const error of errors) assert.ok(error.message.length > 0);
    assert.ok(widget.connected);
    const history = await api(`/api/messages/${sessionId}`);
    assert.deepEqual(history.body, []);
  } finally {
    widget.close();
  }
});

test('a flood is rate limited with RATE_LIMITED, and nothing of it is stored', async () => {
  const sessionId = newSessionId();
  const widget = await connect({ transports: ['websocket'] });
  try {
    const errors = collect(widget, 'chat-error');
    const receipts = collect(widget, 'message-received');
    for (let i = 0; i < 120; i += 1) widget.emit('user-typing', { sessionId, isTyping: i % 2 === 0 });
    await waitFor(() => errors.length > 0, 3_000, 'RATE_LIMITED');
    assert.ok(errors.every((e) => e.code === 'RATE_LIMITED'));
    assert.equal(receipts.length, 0);
    assert.ok(widget.connected);
    await sleep(1_100);
    const receipt = nextEvent(widget, 'message-received');
    widget.emit('user-message', { sessionId, message: 'after the flood' });
    await receipt;
  } finally {
    widget.close();
  }
});

test('attacker: a visitor sending admin events reaches nobody and stores nothing', async () => {
  const sessionId = newSessionId();
  const victim = await connect();
  const attacker = await connect();
  try {
    victim.emit('user-connected', { sessionId });
    await sleep(100);
    const seenByVictim = collect(victim, 'admin-reply');
    const typingSeen = collect(victim, 'admin-typing');
    const errors = collect(attacker, 'chat-error');
    attacker.emit('admin-reply', { sessionId, message: 'Please send your password' });
    attacker.emit('admin-typing', { sessionId, isTyping: true });
    attacker.emit('admin-release', { sessionId });
    await waitFor(() => errors.length === 3, 3_000, 'three FORBIDDEN errors');
    assert.ok(errors.every((e) => e.code === 'FORBIDDEN'));
    await sleep(200);
    assert.equal(seenByVictim.length, 0);
    assert.equal(typingSeen.length, 0);
    assert.deepEqual((await api(`/api/messages/${sessionId}`)).body, []);
  } finally {
    victim.close();
    attacker.close();
  }
});

test('attacker: a visitor never receives another session’s messages, nor admin-bound events', async () => {
  const mine = newSessionId();
  const theirs = newSessionId();
  const me = await connect();
  const them = await connect();
  try {
    me.emit('user-connected', { sessionId: mine });
    them.emit('user-connected', { sessionId: theirs });
    await sleep(100);
    const leaked = [];
    for (const event of ['user-message', 'ai-reply', 'admin-reply', 'ai-thinking', 'user-typing', 'handoff-requested', 'chat-list-update']) {
      me.on(event, (payload) => leaked.push([event, payload]));
    }
    const reply = nextEvent(them, 'ai-reply');
    them.emit('user-message', { sessionId: theirs, message: 'private question' });
    them.emit('user-typing', { sessionId: theirs, isTyping: true });
    await reply;
    them.emit('user-message', { sessionId: theirs, message: 'I would like to talk to a human agent' });
    await nextEvent(them, 'ai-reply');
    await sleep(300);
    assert.deepEqual(leaked, []);
  } finally {
    me.close();
    them.close();
  }
});

/** An HS256 JWT signed with the server's secret. */
test('attacker: an expired or forged token makes a visitor', async () => {
  const sessionId = newSessionId();
  const widget = await connect();
  widget.emit('user-connected', { sessionId });
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: '1', email: process.env.ADMIN_EMAIL, admin: true, iat: now, exp: now + 600 };
  try {
    // Control: the same claims, validly signed and current, make an admin.
    const valid = await connect({ auth: { token: signJwt(claims) } });
    const delivered = nextEvent(widget, 'admin-reply');
    valid.emit('admin-reply', { sessionId, message: 'from a valid token' });
    assert.equal((await delivered).message, 'from a valid token');
    valid.close();

    const expired = signJwt({ ...claims, iat: now - 3600, exp: now - 1800 });
    const forged = signJwt(claims).replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
    for (const token of [expired, forged, 'forged.token.value']) {
      const socket = await connect({ auth: { token } });
      try {
        const error = nextEvent(socket, 'chat-error');
        socket.emit('admin-reply', { sessionId, message: 'hi' });
        assert.equal((await error).code, 'FORBIDDEN');
      } finally {
        socket.close();
      }
    }
  } finally {
    widget.close();
  }
});

test('a widget that leaves while the AI is generating finds the answer stored when it returns', async () => {
  const sessionId = newSessionId();
  const widget = await connect();
  const receipt = nextEvent(widget, 'message-received');
  widget.emit('user-message', { sessionId, message: 'slow one [[mock:first-byte-delay=600]]' });
  await receipt;
  widget.close();
  let history = [];
  const deadline = Date.now() + 5_000;
  while (history.length < 2 && Date.now() < deadline) {
    await sleep(100);
    history = (await api(`/api/messages/${sessionId}`)).body;
  }
  assert.deepEqual(history.map((m) => m.senderType), ['user', 'ai']);
  assert.equal(history[1].message, 'Mock reply: slow one');
});
