// switchboard-args: --socket-events-per-sec 200 --socket-event-burst 400
// Nothing missed across reconnects, on one node: visitors behind a network
// that drops every 3 s for 21 s while an admin replies to them (see
// flapping.mjs), then the replay's details one at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import { flap } from './flapping.mjs';
import { startFlappingProxy } from './proxy.mjs';
import { SERVER_URL, api, collect, connect, login, nextEvent, waitFor } from './helpers.mjs';

const newSessionId = () => `session_${randomUUID()}`;

async function aiOff(token) {
  const { status } = await api('/api/ai/config', { token, method: 'PUT', body: { isEnabled: false } });
  assert.equal(status, 200);
}

test('a flapping network: every reply reaches the visitors, once, in order', async () => {
  const { accessToken } = await login();
  await aiOff(accessToken);
  await flap({ targets: [SERVER_URL], token: accessToken });
});

test('the unchanged widget gets, after a drop, exactly the replies sent while it was away, on its next event', async () => {
  const { accessToken } = await login();
  await aiOff(accessToken);
  const admin = await connect({ auth: { token: accessToken } });
  const sessionId = newSessionId();
  const proxy = await startFlappingProxy([SERVER_URL]);
  const widget = io(proxy.url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
  try {
    const replies = collect(widget, 'admin-reply');
    await new Promise((resolve) => widget.once('connect', resolve));
    widget.emit('user-connected', { sessionId });
    // Stored means joined: the widget's own message is answered after the join.
    const joined = nextEvent(widget, 'message-received');
    widget.emit('user-message', { sessionId, message: 'hello' });
    await joined;
    const first = nextEvent(widget, 'admin-reply');
    admin.emit('admin-reply', { sessionId, message: 'before the drop' });
    await first;

    const gone = new Promise((resolve) => widget.once('disconnect', resolve));
    proxy.cut();
    await gone;
    // Stored while no visitor socket is connected.
    const stored = collect(admin, 'admin-reply');
    admin.emit('admin-reply', { sessionId, message: 'while away 1' });
    admin.emit('admin-reply', { sessionId, message: 'while away 2' });
    await waitFor(() => stored.length === 2, 5_000, 'both replies stored');
    const back = new Promise((resolve) => widget.once('connect', resolve));
    proxy.restore();
    await back;
    assert.equal(replies.length, 1, 'nothing before the widget names its session');
    // The widget types: it is back in its room, after the two replies.
    widget.emit('user-typing', { sessionId, isTyping: true });
    await waitFor(() => replies.length === 3, 5_000, 'the replies sent while away');
    const live = nextEvent(widget, 'admin-reply');
    admin.emit('admin-reply', { sessionId, message: 'after' });
    await live;
    assert.deepEqual(replies.map((row) => row.message), ['before the drop', 'while away 1', 'while away 2', 'after']);
  } finally {
    widget.close();
    admin.close();
    proxy.close();
  }
});

test('lastMessageId: every row after it, in order, once; an unknown id answers chat-error and the whole history', async () => {
  const { accessToken } = await login();
  await aiOff(accessToken);
  const admin = await connect({ auth: { token: accessToken } });
  const sessionId = newSessionId();
  const first = await connect();
  try {
    first.emit('user-connected', { sessionId });
    const mine = await new Promise((resolve) => {
      first.once('message-received', resolve);
      first.emit('user-message', { sessionId, message: 'hi' });
    });
    const stored = collect(admin, 'admin-reply');
    for (const message of ['one', 'two', 'three']) admin.emit('admin-reply', { sessionId, message });
    await waitFor(() => stored.length === 3, 5_000, 'three replies');
    first.close();

    const second = await connect();
    const rows = [];
    for (const event of ['user-message', 'admin-reply', 'ai-reply']) second.on(event, (row) => rows.push([event, row]));
    second.emit('user-connected', { sessionId, lastMessageId: stored[0].id });
    await waitFor(() => rows.length === 2, 5_000, 'the rows after the first reply');
    assert.deepEqual(rows.map(([event, row]) => [event, row.message]), [['admin-reply', 'two'], ['admin-reply', 'three']]);

    const third = await connect();
    const all = [];
    for (const event of ['user-message', 'admin-reply', 'ai-reply']) third.on(event, (row) => all.push([event, row]));
    const refused = nextEvent(third, 'chat-error');
    third.emit('user-connected', { sessionId, lastMessageId: 987654321 });
    assert.equal((await refused).code, 'UNKNOWN_MESSAGE_ID');
    await waitFor(() => all.length === 4, 5_000, 'the whole history');
    assert.deepEqual(all.map(([event, row]) => [event, row.id]), [
      ['user-message', mine.id],
      ...stored.map((row) => ['admin-reply', row.id]),
    ]);
    // Another session's row is unknown here too: no row of that session leaks.
    const other = newSessionId();
    const stranger = await connect();
    const leaked = collect(stranger, 'admin-reply');
    const strangerRefused = nextEvent(stranger, 'chat-error');
    stranger.emit('user-connected', { sessionId: other, lastMessageId: stored[0].id });
    assert.equal((await strangerRefused).code, 'UNKNOWN_MESSAGE_ID');
    const own = nextEvent(stranger, 'message-received');
    stranger.emit('user-message', { sessionId: other, message: 'mine' });
    await own;
    assert.deepEqual(leaked, []);
    for (const socket of [second, third, stranger]) socket.close();
  } finally {
    admin.close();
  }
});

test('a visitor that comes back while the AI is answering is told so, then gets the answer', async () => {
  const { accessToken } = await login();
  const { status } = await api('/api/ai/config', { token: accessToken, method: 'PUT', body: { isEnabled: true } });
  assert.equal(status, 200);
  const sessionId = newSessionId();
  const first = await connect();
  const thinking = nextEvent(first, 'ai-thinking');
  first.emit('user-connected', { sessionId });
  first.emit('user-message', { sessionId, message: 'a slow question [[mock:first-byte-delay=3000]]' });
  assert.equal((await thinking).isThinking, true);
  first.close();

  const second = await connect();
  try {
    const told = nextEvent(second, 'ai-thinking');
    const answer = nextEvent(second, 'ai-reply', 10_000);
    second.emit('user-connected', { sessionId });
    assert.deepEqual(await told, { sessionId, isThinking: true });
    assert.match((await answer).message, /slow question/);
  } finally {
    second.close();
  }
});

/** A visitor of a new session that says things and waits until they are stored. */
async function talkingVisitor() {
  const sessionId = newSessionId();
  const socket = await connect();
  const say = (message) => new Promise((resolve) => {
    socket.once('message-received', resolve);
    socket.emit('user-message', { sessionId, message });
  });
  return { sessionId, socket, say };
}

/** Resolves when `socket` receives the `user-message` row saying `message`. */
function rowArrives(socket, message) {
  return new Promise((resolve) => {
    const seen = (row) => {
      if (row.message !== message) return;
      socket.off('user-message', seen);
      resolve(row);
    };
    socket.on('user-message', seen);
  });
}

/** Cuts `proxy` and resolves once `socket` noticed; `restore()` brings it back. */
async function drop(socket, proxy) {
  const gone = new Promise((resolve) => socket.once('disconnect', resolve));
  proxy.cut();
  await gone;
  return () => {
    const back = new Promise((resolve) => socket.once('connect', resolve));
    proxy.restore();
    return back;
  };
}

test('a console that drops gets what went to the admins meanwhile, in order, once', async () => {
  const { accessToken } = await login();
  await aiOff(accessToken);
  const proxy = await startFlappingProxy([SERVER_URL]);
  const console_ = io(proxy.url, { forceNew: true, auth: { token: accessToken }, reconnectionDelay: 100, reconnectionDelayMax: 200 });
  const connected = new Promise((resolve) => console_.once('connect', resolve));
  const visitor = await talkingVisitor();
  try {
    const rows = collect(console_, 'user-message');
    await connected;
    const first = rowArrives(console_, 'before');
    await visitor.say('before');
    await first;
    const restore = await drop(console_, proxy);
    await visitor.say('while away 1');
    await visitor.say('while away 2');
    const listed = nextEvent(console_, 'chat-list-update');
    await restore();
    await listed;
    const live = rowArrives(console_, 'after');
    await visitor.say('after');
    await live;
    const ours = rows.filter((row) => row.sessionId === visitor.sessionId);
    assert.deepEqual(ours.map((row) => row.message), ['before', 'while away 1', 'while away 2', 'after']);
  } finally {
    console_.close();
    visitor.socket.close();
    proxy.close();
  }
});

test('a console naming lastMessageId in its handshake gets every row after it, while another tab of the admin stays and gets each once', async () => {
  const { accessToken } = await login();
  await aiOff(accessToken);
  const proxy = await startFlappingProxy([SERVER_URL]);
  let newest = 0;
  const console_ = io(proxy.url, {
    forceNew: true,
    auth: (send) => send(newest ? { token: accessToken, lastMessageId: newest } : { token: accessToken }),
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  const connected = new Promise((resolve) => console_.once('connect', resolve));
  const stayed = await connect({ auth: { token: accessToken } });
  const visitor = await talkingVisitor();
  try {
    const rows = collect(console_, 'user-message');
    console_.on('user-message', (row) => { newest = Math.max(newest, row.id); });
    const atStayed = collect(stayed, 'user-message');
    await connected;
    const first = rowArrives(console_, 'before');
    await visitor.say('before');
    await first;
    const restore = await drop(console_, proxy);
    await visitor.say('while away 1');
    await visitor.say('while away 2');
    await restore();
    const live = rowArrives(console_, 'after');
    await visitor.say('after');
    await live;
    const ours = (list) => list.filter((row) => row.sessionId === visitor.sessionId).map((row) => row.message);
    await waitFor(() => ours(atStayed).length === 4, 5_000, 'the other tab got every row');
    assert.deepEqual(ours(rows), ['before', 'while away 1', 'while away 2', 'after']);
    assert.deepEqual(ours(atStayed), ['before', 'while away 1', 'while away 2', 'after']);
  } finally {
    console_.close();
    stayed.close();
    visitor.socket.close();
    proxy.close();
  }
});
