// switchboard-args: --livechat-legacy-broadcast true
// Legacy mode: unchanged dashboards connect with a bare io(url) and no token.
// Admin-bound events go to every socket, admin events are accepted from any
// socket, and replies still go only to the session's room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, nextEvent, collect, waitFor, sleep } from './helpers.mjs';

const newSessionId = () => `session_${randomUUID()}`;

test('a token-less dashboard receives admin-bound events and may reply', async () => {
  const sessionId = newSessionId();
  const dashboard = await connect();
  const widget = await connect();
  try {
    widget.emit('user-connected', { sessionId });
    const incoming = nextEvent(dashboard, 'user-message');
    const typing = nextEvent(dashboard, 'user-typing');
    const listUpdate = nextEvent(dashboard, 'chat-list-update');
    widget.emit('user-message', { sessionId, message: 'hello from the widget' });
    widget.emit('user-typing', { sessionId, isTyping: true });
    assert.equal((await incoming).message, 'hello from the widget');
    assert.deepEqual(await typing, { sessionId, isTyping: true });
    await listUpdate;

    const handoff = nextEvent(dashboard, 'handoff-requested');
    widget.emit('user-message', { sessionId, message: 'I would like to talk to a human agent' });
    assert.deepEqual(await handoff, { sessionId });

    const atWidget = nextEvent(widget, 'admin-reply');
    dashboard.emit('admin-reply', { sessionId, message: 'Hello, I am a human' });
    assert.equal((await atWidget).message, 'Hello, I am a human');
  } finally {
    dashboard.close();
    widget.close();
  }
});

test('replies, admin-typing and ai-thinking still reach only the session', async () => {
  const sessionId = newSessionId();
  const otherWidget = await connect();
  const widget = await connect();
  try {
    otherWidget.emit('user-connected', { sessionId: newSessionId() });
    const leaked = [];
    for (const event of ['ai-reply', 'admin-reply', 'admin-typing', 'ai-thinking']) {
      otherWidget.on(event, (payload) => leaked.push([event, payload]));
    }
    widget.emit('user-connected', { sessionId });
    const thinking = collect(widget, 'ai-thinking');
    const reply = nextEvent(widget, 'ai-reply');
    widget.emit('user-message', { sessionId, message: 'question for the bot' });
    await reply;
    await waitFor(() => thinking.length === 2, 2_000, 'ai-thinking off');
    const adminTyping = nextEvent(widget, 'admin-typing');
    otherWidget.emit('admin-typing', { sessionId, isTyping: true });
    await adminTyping;
    const adminReply = nextEvent(widget, 'admin-reply');
    otherWidget.emit('admin-reply', { sessionId, message: 'reply for one session' });
    await adminReply;
    await sleep(300);
    assert.deepEqual(leaked, []);
  } finally {
    otherWidget.close();
    widget.close();
  }
});

test('several dashboard sockets of one agent each get an event once', async () => {
  const sessionId = newSessionId();
  // Dashboards open a socket per clicked session without closing the old ones.
  const tabs = await Promise.all([connect(), connect(), connect(), connect(), connect(), connect()]);
  const widget = await connect();
  try {
    const perTab = tabs.map((tab) => collect(tab, 'user-message'));
    widget.emit('user-message', { sessionId, message: 'counted once per socket' });
    await waitFor(() => perTab.every((seen) => seen.length >= 1), 3_000, 'every tab');
    await sleep(300);
    assert.deepEqual(perTab.map((seen) => seen.length), [1, 1, 1, 1, 1, 1]);
  } finally {
    tabs.forEach((tab) => tab.close());
    widget.close();
  }
});
