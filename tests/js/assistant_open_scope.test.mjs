// Assistant conversations in the default `open` scope, from the attacker's
// side: what a token or client key created belongs to it; only the keyless
// conversations unchanged frontends create stay open to every keyless caller.
// The list comes in pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, nextEvent, collect, waitFor, sleep, api, login } from './helpers.mjs';

const key = () => `key-${randomUUID()}`;
const asKey = (clientKey) => ({ headers: { 'x-client-key': clientKey } });

test('REST: a keyed conversation is its creator\'s, a keyless one everybody\'s', async () => {
  const alice = key();
  const keyed = await api('/api/conversations', { method: 'POST', body: { title: 'Alice only' }, ...asKey(alice) });
  assert.equal(keyed.status, 201);
  const { token } = await login();
  const signedIn = await api('/api/conversations', { method: 'POST', body: { title: 'the admin\'s' }, token });
  assert.equal(signedIn.status, 201);
  const open = await api('/api/conversations', { method: 'POST', body: { title: 'anybody\'s' } });
  assert.equal(open.status, 201);

  // Anonymous callers (the unchanged app) see and change only keyless ones.
  const anonymousList = await api('/api/conversations');
  assert.deepEqual(anonymousList.body.map((c) => c.id), [open.body.id]);
  for (const owned of [keyed.body.id, signedIn.body.id]) {
    assert.equal((await api(`/api/conversations/${owned}`)).status, 404);
    assert.equal((await api(`/api/conversations/${owned}`, { method: 'PUT', body: { title: 'mine now' } })).status, 404);
    assert.equal((await api(`/api/conversations/${owned}`, { method: 'DELETE' })).status, 404);
    const chat = await api('/api/chat', { method: 'POST', body: { message: 'hi', conversationId: owned } });
    assert.equal(chat.body.code, 'CONVERSATION_NOT_FOUND');
  }
  // Another key sees nothing of Alice's, nor the keyless ones.
  assert.deepEqual((await api('/api/conversations', asKey(key()))).body, []);
  assert.equal((await api(`/api/conversations/${keyed.body.id}`, asKey(key()))).status, 404);
  // Each owner lists its own.
  assert.deepEqual((await api('/api/conversations', asKey(alice))).body.map((c) => c.id), [keyed.body.id]);
  assert.deepEqual((await api('/api/conversations', { token })).body.map((c) => c.id), [signedIn.body.id]);
  assert.equal((await api(`/api/conversations/${keyed.body.id}`, asKey(alice))).body.title, 'Alice only');
});

test('sockets: nobody else follows or streams into a keyed conversation', async () => {
  const aliceKey = key();
  const alice = await connect({ auth: { clientKey: aliceKey } });
  const anonymous = await connect();
  try {
    const done = nextEvent(alice, 'stream_complete', 10_000);
    alice.emit('stream_chat', { message: 'secret plan [[mock:words=5]]' });
    const { conversationId } = await done;

    const errors = collect(anonymous, 'stream_error');
    const seen = [];
    for (const event of ['new_message', 'stream_start', 'stream_chunk', 'stream_complete']) {
      anonymous.on(event, (payload) => seen.push(event, payload));
    }
    anonymous.emit('join_conversation', conversationId);
    anonymous.emit('stream_chat', { message: 'let me in', conversationId });
    await waitFor(() => errors.length >= 2, 5_000, 'two refusals');
    assert.deepEqual(errors.map((e) => e.code), ['CONVERSATION_NOT_FOUND', 'CONVERSATION_NOT_FOUND']);

    const finished = nextEvent(alice, 'stream_complete', 10_000);
    alice.emit('stream_chat', { message: 'more secrets [[mock:words=5]]', conversationId });
    await finished;
    await sleep(200);
    assert.deepEqual(seen, []);
  } finally {
    alice.close();
    anonymous.close();
  }
});

test('the list comes in pages of 100 by default, with a cursor to the next', async () => {
  const owner = key();
  const created = [];
  for (let i = 0; i < 7; i += 1) {
    const made = await api('/api/conversations', { method: 'POST', body: { title: `page ${i}` }, ...asKey(owner) });
    created.push(made.body.id);
  }
  const newestFirst = [...created].reverse();
  const whole = await api('/api/conversations', asKey(owner));
  assert.deepEqual(whole.body.map((c) => c.id), newestFirst);
  assert.equal(whole.headers.get('x-next-cursor'), null, 'one page holds them all');

  const pages = [];
  let before = '';
  for (;;) {
    const page = await api(`/api/conversations?limit=3${before}`, asKey(owner));
    assert.equal(page.status, 200);
    pages.push(page.body.map((c) => c.id));
    const next = page.headers.get('x-next-cursor');
    if (!next) break;
    before = `&before=${next}`;
  }
  assert.deepEqual(pages.map((p) => p.length), [3, 3, 1]);
  assert.deepEqual(pages.flat(), newestFirst);

  assert.equal((await api('/api/conversations?limit=501', asKey(owner))).status, 400);
  assert.equal((await api('/api/conversations?limit=0', asKey(owner))).status, 400);
  const foreignCursor = await api(`/api/conversations?before=${created[0]}`, asKey(key()));
  assert.equal(foreignCursor.status, 400, 'a cursor of another owner\'s list');
});
