// switchboard-args: --assistant-conversation-scope owner
// Assistant conversations scoped to their creator (ASSISTANT_CONVERSATION_SCOPE=owner),
// from the attacker's side: another client key or user sees, joins, streams into,
// types in and stops nothing of someone else's conversation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, nextEvent, collect, sleep, api } from './helpers.mjs';

const key = () => `key-${randomUUID()}`;
const asKey = (clientKey) => ({ headers: { 'x-client-key': clientKey } });

test('REST: conversations need an identity and stay with their creator', async () => {
  const anonymous = await api('/api/conversations');
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.body.code, 'OWNER_REQUIRED');
  const tooShort = await api('/api/conversations', asKey('short'));
  assert.equal(tooShort.status, 400);

  const alice = key();
  const bob = key();
  const created = await api('/api/conversations', { method: 'POST', body: { title: 'Alice only' }, ...asKey(alice) });
  assert.equal(created.status, 201);
  const id = created.body.id;
  assert.equal((await api(`/api/conversations/${id}`, asKey(alice))).status, 200);
  const listed = await api('/api/conversations', asKey(alice));
  assert.deepEqual(listed.body.map((c) => c.id), [id]);

  assert.equal((await api(`/api/conversations/${id}`, asKey(bob))).status, 404);
  assert.deepEqual((await api('/api/conversations', asKey(bob))).body, []);
  assert.equal((await api(`/api/conversations/${id}`, { method: 'PUT', body: { title: 'mine' }, ...asKey(bob) })).status, 404);
  assert.equal((await api(`/api/conversations/${id}`, { method: 'DELETE', ...asKey(bob) })).status, 404);
  const chat = await api('/api/chat', { method: 'POST', body: { message: 'hi', conversationId: id }, ...asKey(bob) });
  assert.equal(chat.status, 404);
  assert.equal(chat.body.code, 'CONVERSATION_NOT_FOUND');

  const own = await api('/api/chat', { method: 'POST', body: { message: 'hi', conversationId: id }, ...asKey(alice) });
  assert.equal(own.status, 200);
  assert.equal((await api(`/api/conversations/${id}`, asKey(alice))).body.title, 'Alice only');
});

test('sockets: another key cannot join, stream into, type in or stop a conversation', async () => {
  const aliceKey = key();
  const alice = await connect({ auth: { clientKey: aliceKey } });
  const mallory = await connect({ auth: { clientKey: key() } });
  const anonymous = await connect();
  try {
    const done = nextEvent(alice, 'stream_complete', 10_000);
    alice.emit('stream_chat', { message: 'secret plan [[mock:words=5]]' });
    const { conversationId } = await done;

    const errors = collect(mallory, 'stream_error');
    const seen = [];
    for (const event of ['new_message', 'stream_start', 'stream_chunk', 'stream_complete', 'user_typing', 'message_status']) {
      mallory.on(event, (payload) => seen.push(event, payload));
    }
    mallory.emit('join_conversation', conversationId);
    mallory.emit('stream_chat', { message: 'let me in', conversationId });
    mallory.emit('typing_start', { conversationId });
    mallory.emit('message_read', { conversationId, messageId: 'm1' });
    mallory.emit('stop_generation', { conversationId });
    await sleep(300);
    assert.deepEqual(errors.map((e) => e.code), Array(5).fill('CONVERSATION_NOT_FOUND'));

    const anonymousErrors = collect(anonymous, 'stream_error');
    anonymous.emit('stream_chat', { message: 'who am I' });
    await sleep(200);
    assert.deepEqual(anonymousErrors.map((e) => e.code), ['OWNER_REQUIRED']);

    // Alice's next stream is not seen by Mallory, and Mallory cannot stop it.
    const started = nextEvent(alice, 'stream_start');
    const finished = nextEvent(alice, 'stream_complete', 10_000);
    alice.emit('stream_chat', { message: 'more secrets [[mock:words=20]] [[mock:delay=20]]', conversationId });
    const { messageId } = await started;
    mallory.emit('stop_generation', { messageId });
    const complete = await finished;
    assert.equal(complete.conversation.messages.at(-1).status, 'complete');
    assert.deepEqual(seen, []);
  } finally {
    alice.close();
    mallory.close();
    anonymous.close();
  }
});
