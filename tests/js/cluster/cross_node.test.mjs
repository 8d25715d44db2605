// Several nodes with the official client: a widget on node A and the admin
// console on node B see each other; an assistant stream started on A reaches
// a listener on B chunk by chunk and a stop sent to B stops it; the hand-off
// race across nodes. Run by `tests/cluster.rs`, which starts the nodes (on one
// PostgreSQL database, with the Redis or the PostgreSQL adapter) and passes
// their addresses in SWITCHBOARD_URLS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import { connectTo, nextEvent, collect, waitFor, sleep, ADMIN_EMAIL, ADMIN_PASSWORD } from '../helpers.mjs';

const [A, B] = process.env.SWITCHBOARD_URLS.split(',');
const newSessionId = () => `session_${randomUUID()}`;

async function api(node, path, { token, method = 'GET', body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${node}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function adminOn(node) {
  const { body } = await api(node, '/api/auth/login', {
    method: 'POST',
    body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
  });
  return { socket: await connectTo(node, { auth: { token: body.accessToken } }), token: body.accessToken };
}

/** Lets a just-joined socket's room reach the other nodes. */
const settle = () => sleep(150);

test('widget on A, admin on B: messages, typing, AI thinking and replies, hand-off, list updates', async () => {
  const sessionId = newSessionId();
  const { socket: admin, token } = await adminOn(B);
  const widget = await connectTo(A);
  // The visitor's second tab, on the other node.
  const secondTab = await connectTo(B);
  try {
    widget.emit('user-connected', { sessionId });
    secondTab.emit('user-connected', { sessionId });
    await settle();

    const atAdmin = nextEvent(admin, 'user-message');
    const aiAtAdmin = nextEvent(admin, 'ai-reply');
    const listAtAdmin = nextEvent(admin, 'chat-list-update');
    const thinkingOnB = collect(secondTab, 'ai-thinking');
    const replyOnB = nextEvent(secondTab, 'ai-reply');
    widget.emit('user-message', { sessionId, message: 'hello from node A' });
    const row = await atAdmin;
    assert.equal(row.sessionId, sessionId);
    assert.equal(row.message, 'hello from node A');
    assert.equal((await aiAtAdmin).message, 'Mock reply: hello from node A');
    await listAtAdmin;
    assert.equal((await replyOnB).senderType, 'ai');
    await waitFor(() => thinkingOnB.length === 2, 3_000, 'ai-thinking on and off on node B');
    assert.deepEqual(thinkingOnB.map((t) => t.isThinking), [true, false]);

    const typingAtAdmin = nextEvent(admin, 'user-typing');
    widget.emit('user-typing', { sessionId, isTyping: true });
    assert.deepEqual(await typingAtAdmin, { sessionId, isTyping: true });
    const typingAtWidget = nextEvent(widget, 'admin-typing');
    admin.emit('admin-typing', { sessionId, isTyping: true });
    assert.deepEqual(await typingAtWidget, { sessionId, isTyping: true });

    const replyAtWidget = nextEvent(widget, 'admin-reply');
    admin.emit('admin-reply', { sessionId, message: 'Sam here, on node B' });
    assert.equal((await replyAtWidget).message, 'Sam here, on node B');

    // The admin on B took the session: node A's AI stays silent from now on.
    const aiReplies = collect(widget, 'ai-reply');
    const forwarded = nextEvent(admin, 'user-message');
    widget.emit('user-message', { sessionId, message: 'thanks Sam' });
    await forwarded;
    await sleep(500);
    assert.equal(aiReplies.length, 0, 'no AI answer on A after an admin replied on B');

    // Handed back on B: A's AI answers again.
    const released = await api(B, `/api/chats/${sessionId}/release`, { token, method: 'POST' });
    assert.equal(released.status, 200);
    widget.emit('user-message', { sessionId, message: 'bot again' });
    await waitFor(() => aiReplies.length === 1, 5_000, 'the AI answers on A after a release on B');

    // A visitor on A asking for a human reaches the admin on B.
    const handoff = nextEvent(admin, 'handoff-requested');
    widget.emit('user-message', { sessionId, message: 'I would like to talk to a human agent' });
    assert.deepEqual(await handoff, { sessionId });
  } finally {
    admin.close();
    widget.close();
    secondTab.close();
  }
});

test('an admin reply on B while the AI of node A is generating: no AI answer is stored or sent', async () => {
  const sessionId = newSessionId();
  const { socket: admin, token } = await adminOn(B);
  const widget = await connectTo(A);
  try {
    widget.emit('user-connected', { sessionId });
    await settle();
    const aiReplies = collect(widget, 'ai-reply');
    const aiAtAdmin = collect(admin, 'ai-reply');
    const thinking = collect(widget, 'ai-thinking');
    widget.emit('user-message', { sessionId, message: 'slow question [[mock:first-byte-delay=1500]]' });
    await waitFor(() => thinking.length === 1, 3_000, 'ai-thinking on');
    const adminReply = nextEvent(widget, 'admin-reply');
    admin.emit('admin-reply', { sessionId, message: 'A human on node B will take it' });
    await adminReply;
    await waitFor(() => thinking.length === 2, 6_000, 'ai-thinking off');
    await sleep(300);
    assert.equal(aiReplies.length, 0, 'no AI reply reached the widget');
    assert.equal(aiAtAdmin.length, 0, 'no AI reply reached the admin');
    for (const node of [A, B]) {
      const chat = await api(node, `/api/chats/${sessionId}`, { token });
      assert.deepEqual(chat.body.messages.map((m) => m.senderType), ['user', 'admin']);
    }
  } finally {
    admin.close();
    widget.close();
  }
});

test('an assistant stream started on A reaches a listener on B chunk by chunk; a stop sent to B stops it', async () => {
  const sender = await connectTo(A);
  const listener = await connectTo(B);
  try {
    const { body: conversation } = await api(A, '/api/conversations', { method: 'POST', body: { title: 'Across nodes' } });
    listener.emit('join_conversation', conversation.id);
    await settle();
    const chunksOnB = collect(listener, 'stream_chunk');
    const completeOnB = nextEvent(listener, 'stream_complete', 10_000);
    sender.emit('stream_chat', { message: '[[mock:words=12]] [[mock:delay=30]]', conversationId: conversation.id });
    await completeOnB;
    assert.ok(chunksOnB.length >= 2, `several chunks reached node B (${chunksOnB.length})`);
    let text = '';
    for (const chunk of chunksOnB) {
      text += chunk.delta;
      assert.equal(chunk.content, text, 'in order, none lost');
    }
    assert.equal(chunksOnB.at(-1).isComplete, true);

    // A stream that never ends on its own, on A; the stop comes to B. The
    // sender's copy of the first stream's end may arrive after B's: every
    // wait below is for a given message.
    const completedOnA = collect(sender, 'stream_complete');
    const completed = (id) => waitFor(() => completedOnA.some((done) => done.messageId === id), 10_000, `the end of ${id}`);
    const started = nextEvent(listener, 'stream_start', 5_000);
    const firstChunk = nextEvent(listener, 'stream_chunk', 5_000);
    sender.emit('stream_chat', { message: 'endless [[mock:hang]]', conversationId: conversation.id });
    const { messageId } = await started;
    await firstChunk;
    listener.emit('stop_generation', { messageId });
    await completed(messageId);
    const stored = await api(B, `/api/conversations/${conversation.id}`);
    const last = stored.body.messages.at(-1);
    assert.deepEqual([last.id, last.content, last.status], [messageId, 'Mock ', 'stopped']);

    // By conversation id, from B, too.
    const startedAgain = nextEvent(listener, 'stream_start', 5_000);
    const again = nextEvent(listener, 'stream_chunk', 5_000);
    sender.emit('stream_chat', { message: 'again [[mock:hang]]', conversationId: conversation.id });
    const { messageId: againId } = await startedAgain;
    await again;
    listener.emit('stop_generation', { conversationId: conversation.id });
    await completed(againId);
  } finally {
    sender.close();
    listener.close();
  }
});

test('a resume session opened on A comes back on B with its resumeId', async () => {
  const first = await connectTo(A);
  let resumeId;
  try {
    const session = nextEvent(first, 'resume_session', 5_000);
    first.emit('get_updated_resume');
    ({ resumeId } = await session);
    const updated = nextEvent(first, 'field_updated', 5_000);
    first.emit('update_field', { field: 'Name', value: 'Ada Lovelace' });
    await updated;
  } finally {
    first.close();
  }
  // The session is announced as the socket connects: listen before that.
  const second = io(B, { forceNew: true, reconnection: false, auth: { resumeId } });
  try {
    const announced = await nextEvent(second, 'resume_session', 5_000);
    assert.equal(announced.resumeId, resumeId);
    const latest = nextEvent(second, 'updated_resume', 5_000);
    second.emit('get_updated_resume');
    assert.equal((await latest).resumeData.Name, 'Ada Lovelace');
  } finally {
    second.close();
  }
});
