// switchboard-args: --ai-timeout-secs 2
// Assistant chat (SPEC §5) with the official client: the web client (joins with
// a bare string id), the mobile client (never joins, no id at first), errors,
// stop, provider failures, disconnects, late joins and concurrency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SERVER_URL, MOCK_AI_URL, connect, nextEvent, collect, waitFor, sleep } from './helpers.mjs';

async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(`${SERVER_URL}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

const mockStats = async () => (await fetch(`${MOCK_AI_URL.replace(/\/v1$/, '')}/__mock/stats`)).json();

/** Resolves with everything one stream sent to `socket`, once `stream_complete` arrived. */
function recordStream(socket) {
  const record = { start: null, chunks: [], complete: null, errors: [] };
  const onStart = (payload) => (record.start ??= payload);
  const onChunk = (payload) => record.chunks.push(payload);
  const onError = (payload) => record.errors.push(payload);
  socket.on('stream_start', onStart);
  socket.on('stream_chunk', onChunk);
  socket.on('stream_error', onError);
  record.done = new Promise((resolve) => {
    socket.once('stream_complete', (payload) => {
      record.complete = payload;
      setTimeout(() => {
        socket.off('stream_start', onStart);
        socket.off('stream_chunk', onChunk);
        socket.off('stream_error', onError);
        resolve(record);
      }, 50);
    });
  });
  return record;
}

function assertWellFormed(record, expectedText) {
  const { start, chunks, complete } = record;
  assert.ok(start.messageId && start.conversationId);
  assert.ok(chunks.length >= 1);
  let text = '';
  for (const chunk of chunks) {
    assert.equal(chunk.messageId, start.messageId);
    assert.equal(chunk.conversationId, start.conversationId);
    text += chunk.delta;
    assert.equal(chunk.content, text, 'content is the whole text so far');
  }
  assert.equal(chunks.at(-1).isComplete, true);
  assert.ok(chunks.slice(0, -1).every((chunk) => chunk.isComplete === false));
  assert.equal(complete.messageId, start.messageId);
  assert.equal(complete.conversationId, start.conversationId);
  assert.equal(complete.conversation.id, start.conversationId);
  if (expectedText !== undefined) assert.equal(text, expectedText);
  return text;
}

test('web client: REST conversation, join with a bare string, stream, new_message to others only', async () => {
  const created = await api('/api/conversations', { method: 'POST', body: { title: 'Web chat' } });
  assert.equal(created.status, 201);
  const id = created.body.id;
  const sender = await connect();
  const other = await connect();
  try {
    sender.emit('join_conversation', id);
    other.emit('join_conversation', { conversationId: id });
    await sleep(100);
    const senderNew = collect(sender, 'new_message');
    const otherNew = nextEvent(other, 'new_message');
    const seenBySender = recordStream(sender);
    const seenByOther = recordStream(other);
    sender.emit('stream_chat', { message: 'Tell me about Rust', conversationId: id, stream: true });
    const question = await otherNew;
    assert.equal(question.content, 'Tell me about Rust');
    assert.equal(question.role, 'user');
    assert.equal(question.conversationId, id);
    assert.ok(question.id && question.timestamp);
    const record = await seenBySender.done;
    assertWellFormed(record, 'Mock reply: Tell me about Rust');
    assertWellFormed(await seenByOther.done, 'Mock reply: Tell me about Rust');
    assert.equal(senderNew.length, 0, 'the sender does not get its own new_message');
    const messages = record.complete.conversation.messages;
    assert.deepEqual(messages.map((m) => [m.role, m.content]), [
      ['user', 'Tell me about Rust'],
      ['assistant', 'Mock reply: Tell me about Rust'],
    ]);

    // The model sees the history.
    const second = recordStream(sender);
    sender.emit('stream_chat', { message: 'And then?', conversationId: id, stream: true });
    await second.done;
    const requests = await (await fetch(`${MOCK_AI_URL.replace(/\/v1$/, '')}/__mock/requests`)).json();
    const sent = requests.at(-1).body.messages.map((m) => [m.role, m.content]);
    assert.deepEqual(sent.slice(1), [
      ['user', 'Tell me about Rust'],
      ['assistant', 'Mock reply: Tell me about Rust'],
      ['user', 'And then?'],
    ]);
    assert.equal(sent[0][0], 'system');
  } finally {
    sender.close();
    other.close();
  }
});

test('mobile client: no join, no id; the id from stream_start carries the conversation on', async () => {
  const mobile = await connect({ transports: ['websocket'] });
  try {
    const long = 'Plan a seven day trip through the mountains of northern Italy with trains';
    const first = recordStream(mobile);
    mobile.emit('stream_chat', { message: long });
    const record = await first.done;
    assertWellFormed(record, `Mock reply: ${long}`);
    const { conversationId } = record.start;
    assert.equal(record.complete.conversation.title, `${long.slice(0, 50)}...`);

    const next = recordStream(mobile);
    mobile.emit('stream_chat', { message: 'short one', conversationId });
    const again = await next.done;
    assert.equal(again.start.conversationId, conversationId);
    assert.equal(again.complete.conversation.messages.length, 4);
  } finally {
    mobile.close();
  }
});

test('every error code; nothing half-written; the socket stays up', async () => {
  const socket = await connect();
  try {
    const errors = collect(socket, 'stream_error');
    const starts = collect(socket, 'stream_start');
    socket.emit('stream_chat', { message: '' });
    socket.emit('stream_chat', { message: '   ' });
    socket.emit('stream_chat', { message: 42 });
    socket.emit('stream_chat', {});
    socket.emit('stream_chat', { message: 'x'.repeat(10_001) });
    socket.emit('stream_chat', { message: 'hi', conversationId: 7 });
    socket.emit('stream_chat', { message: 'hi', conversationId: 'no-such-conversation' });
    socket.emit('join_conversation', 12);
    socket.emit('stop_generation', {});
    await waitFor(() => errors.length === 9, 3_000, 'nine stream_errors');
    assert.deepEqual(errors.map((e) => e.code), [
      'INVALID_REQUEST', 'INVALID_REQUEST', 'INVALID_REQUEST', 'INVALID_REQUEST', 'INVALID_REQUEST',
      'INVALID_REQUEST', 'CONVERSATION_NOT_FOUND', 'INVALID_REQUEST', 'INVALID_REQUEST',
    ]);
    assert.ok(errors.every((e) => typeof e.message === 'string' && e.message.length > 0));
    assert.equal(starts.length, 0);
    const list = await api('/api/conversations');
    assert.ok(!list.body.some((c) => c.title === 'hi'), 'no conversation was created');
    assert.ok(socket.connected);

    for (let i = 0; i < 60; i += 1) socket.emit('typing_start', { conversationId: 'flood' });
    await waitFor(() => errors.some((e) => e.code === 'RATE_LIMITED'), 3_000, 'RATE_LIMITED');
  } finally {
    socket.close();
  }
});

test('provider failure: the stream still ends, then AI_PROVIDER_ERROR; partial text is kept', async () => {
  const socket = await connect();
  try {
    const failing = recordStream(socket);
    socket.emit('stream_chat', { message: 'boom [[mock:status=500]]' });
    const record = await failing.done;
    assertWellFormed(record, '');
    await waitFor(() => record.errors.length === 1, 2_000, 'stream_error');
    assert.equal(record.errors[0].code, 'AI_PROVIDER_ERROR');

    const cut = recordStream(socket);
    socket.emit('stream_chat', { message: 'one two three four [[mock:cut=3]]' });
    const broken = await cut.done;
    const text = assertWellFormed(broken);
    assert.equal(text, 'Mock reply: one ');
    await waitFor(() => broken.errors.length === 1, 2_000, 'stream_error after a cut');
    const stored = await api(`/api/conversations/${broken.start.conversationId}`);
    const reply = stored.body.messages.at(-1);
    assert.equal(reply.content, 'Mock reply: one ');
    assert.equal(reply.status, 'failed');
  } finally {
    socket.close();
  }
});

test('a slow provider streams over time; a stalled one fails at the timeout', async () => {
  const socket = await connect();
  try {
    const slow = recordStream(socket);
    socket.emit('stream_chat', { message: 'a b c d [[mock:delay=80]]' });
    const record = await slow.done;
    assertWellFormed(record, 'Mock reply: a b c d');
    assert.ok(record.chunks.length >= 4, 'slow deltas arrive as separate chunks');

    const stalled = recordStream(socket);
    socket.emit('stream_chat', { message: 'stall [[mock:hang]]' });
    const hung = await stalled.done;
    assertWellFormed(hung, 'Mock ');
    assert.equal(hung.errors[0]?.code, 'AI_PROVIDER_ERROR');
  } finally {
    socket.close();
  }
});

test('stop_generation aborts the provider call and keeps what was generated', async () => {
  const socket = await connect();
  try {
    const before = (await mockStats()).aborted;
    const stream = recordStream(socket);
    const firstChunk = nextEvent(socket, 'stream_chunk');
    socket.emit('stream_chat', { message: 'endless [[mock:hang]]' });
    await firstChunk;
    socket.emit('stop_generation', { messageId: stream.start.messageId });
    const record = await stream.done;
    assertWellFormed(record, 'Mock ');
    assert.equal(record.errors.length, 0);
    let aborted = before;
    for (let i = 0; i < 50 && aborted === before; i += 1) {
      await sleep(20);
      aborted = (await mockStats()).aborted;
    }
    assert.equal(aborted, before + 1, 'the mock saw its connection closed');
    const stored = await api(`/api/conversations/${record.start.conversationId}`);
    assert.deepEqual([stored.body.messages.at(-1).content, stored.body.messages.at(-1).status], ['Mock ', 'stopped']);

    // By conversation id too.
    const byConversation = recordStream(socket);
    const chunk = nextEvent(socket, 'stream_chunk');
    socket.emit('stream_chat', { message: 'again [[mock:hang]]', conversationId: record.start.conversationId });
    await chunk;
    socket.emit('stop_generation', { conversationId: record.start.conversationId });
    await byConversation.done;
    // Stopping what already ended is no error.
    socket.emit('stop_generation', { messageId: record.start.messageId });
    await sleep(100);
    assert.equal(byConversation.errors.length, 0);
  } finally {
    socket.close();
  }
});

test('a client that disconnects mid-stream does not stop it; the reply is stored whole', async () => {
  const socket = await connect();
  const started = nextEvent(socket, 'stream_start');
  socket.emit('stream_chat', { message: '[[mock:words=20]] [[mock:delay=20]]' });
  const { conversationId } = await started;
  socket.close();
  let reply;
  for (let i = 0; i < 100; i += 1) {
    await sleep(50);
    reply = (await api(`/api/conversations/${conversationId}`)).body.messages.at(-1);
    if (reply.status === 'complete') break;
  }
  assert.equal(reply.status, 'complete');
  assert.equal(reply.content, Array.from({ length: 20 }, (_, i) => `w${i + 1}`).join(' '));
});

test('a socket that joins mid-stream receives the rest of the chunks', async () => {
  const sender = await connect();
  const late = await connect();
  try {
    const stream = recordStream(sender);
    const started = nextEvent(sender, 'stream_start');
    sender.emit('stream_chat', { message: '[[mock:words=15]] [[mock:delay=40]]' });
    const { conversationId } = await started;
    await sleep(250);
    const lateRecord = { chunks: collect(late, 'stream_chunk') };
    const lateDone = nextEvent(late, 'stream_complete', 5_000);
    late.emit('join_conversation', conversationId);
    await lateDone;
    const full = assertWellFormed(await stream.done);
    assert.ok(lateRecord.chunks.length >= 1);
    assert.ok(lateRecord.chunks.length < stream.chunks.length, 'only the rest');
    assert.equal(lateRecord.chunks.at(-1).content, full);
    assert.equal(lateRecord.chunks.at(-1).isComplete, true);
  } finally {
    sender.close();
    late.close();
  }
});

test('typing and read status reach the room', async () => {
  const { body } = await api('/api/conversations', { method: 'POST', body: { title: 'Typing' } });
  const alice = await connect();
  const bob = await connect();
  try {
    alice.emit('join_conversation', body.id);
    bob.emit('join_conversation', body.id);
    await sleep(100);
    const aliceTyping = collect(alice, 'user_typing');
    const atBob = nextEvent(bob, 'user_typing');
    alice.emit('typing_start', { conversationId: body.id, userName: 'Alice' });
    assert.deepEqual(await atBob, { userId: alice.id, userName: 'Alice', isTyping: true });
    const stopAtBob = nextEvent(bob, 'user_typing');
    alice.emit('typing_stop', { conversationId: body.id });
    assert.deepEqual(await stopAtBob, { userId: alice.id, isTyping: false });
    await sleep(100);
    assert.equal(aliceTyping.length, 0, 'the sender is excluded');

    const status = nextEvent(alice, 'message_status');
    bob.emit('message_read', { conversationId: body.id, messageId: 'm-1' });
    assert.deepEqual(await status, { messageId: 'm-1', status: 'read', readBy: bob.id });
  } finally {
    alice.close();
    bob.close();
  }
});

test('50 concurrent streams in different conversations complete untangled', async () => {
  const sockets = await Promise.all(Array.from({ length: 50 }, () => connect({ transports: ['websocket'] })));
  try {
    const records = sockets.map((socket, i) => {
      const record = recordStream(socket);
      socket.emit('stream_chat', { message: `question number ${i} [[mock:delay=5]]` });
      return record;
    });
    const done = await Promise.all(records.map((r) => r.done));
    done.forEach((record, i) => assertWellFormed(record, `Mock reply: question number ${i}`));
    assert.equal(new Set(done.map((r) => r.start.conversationId)).size, 50);
  } finally {
    sockets.forEach((socket) => socket.close());
  }
});

test('coalescing: a fast provider does not get a chunk per token', async () => {
  const socket = await connect();
  try {
    const stream = recordStream(socket);
    socket.emit('stream_chat', { message: '[[mock:words=400]]' });
    const record = await stream.done;
    assertWellFormed(record);
    assert.ok(record.chunks.length < 100, `${record.chunks.length} chunks for 400 tokens`);
  } finally {
    socket.close();
  }
});

test('REST: conversation CRUD, errors, and non-streaming POST /api/chat', async () => {
  const created = await api('/api/conversations', { method: 'POST', body: { title: 'CRUD' } });
  assert.equal(created.status, 201);
  assert.deepEqual(Object.keys(created.body).sort(), ['createdAt', 'id', 'messages', 'title', 'updatedAt']);
  const id = created.body.id;
  const renamed = await api(`/api/conversations/${id}`, { method: 'PUT', body: { title: 'Renamed' } });
  assert.equal(renamed.status, 200);
  assert.equal(renamed.body.title, 'Renamed');

  const chat = await api('/api/chat', { method: 'POST', body: { message: 'non streaming', conversationId: id } });
  assert.equal(chat.status, 200);
  assert.equal(chat.body.message.content, 'Mock reply: non streaming');
  assert.equal(chat.body.message.role, 'assistant');
  assert.equal(chat.body.conversation.messages.length, 2);
  const fresh = await api('/api/chat', { method: 'POST', body: { message: 'new conversation please' } });
  assert.equal(fresh.body.conversation.title, 'new conversation please');

  const list = await api('/api/conversations');
  const mine = list.body.find((c) => c.id === id);
  assert.equal(mine.messages.length, 1, 'only the last message');
  assert.equal(mine.messages[0].content, 'Mock reply: non streaming');

  const deleted = await api(`/api/conversations/${id}`, { method: 'DELETE' });
  assert.equal(deleted.status, 204);
  const gone = await api(`/api/conversations/${id}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.body.code, 'CONVERSATION_NOT_FOUND');
  assert.ok(gone.body.message);
  assert.equal((await api(`/api/conversations/${id}`, { method: 'DELETE' })).status, 404);
  assert.equal((await api('/api/conversations', { method: 'POST', body: { title: '' } })).status, 400);
  assert.equal((await api('/api/conversations', { method: 'POST', body: {} })).status, 400);
  assert.equal((await api('/api/chat', { method: 'POST', body: { message: '' } })).status, 400);
  assert.equal((await api('/api/chat', { method: 'POST', body: { message: 'x', conversationId: 'nope' } })).status, 404);
  const failed = await api('/api/chat', { method: 'POST', body: { message: 'x [[mock:status=500]]' } });
  assert.equal(failed.status, 502);
  assert.equal(failed.body.code, 'AI_PROVIDER_ERROR');
});
