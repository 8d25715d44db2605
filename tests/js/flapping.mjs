// Live chat across a flapping network: visitors behind a TCP proxy that cuts
// every connection every few seconds, an admin replying to them all the
// while, and the count of stored replies each visitor received. Shared by the
// single-node test (livechat_reconnect.test.mjs) and the two-node one
// (cluster/reconnect.test.mjs), where each reconnect lands on the other node.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import { startFlappingProxy } from './proxy.mjs';

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A visitor. `saysWhatItHas`: it announces `user-connected {sessionId,
 * lastMessageId}` on every connect, before anything else; otherwise it
 * behaves like the unchanged widget: one `user-connected` when its session
 * starts, messages emitted whether connected or not (socket.io-client
 * buffers them), every reply appended.
 */
function visitor(url, saysWhatItHas) {
  const sessionId = `session_${randomUUID()}`;
  const socket = io(url, { forceNew: true, reconnectionDelay: 300, reconnectionDelayMax: 1000 });
  const replies = [];
  const errors = [];
  let newest = 0;
  const heard = (row) => {
    replies.push(row);
    newest = Math.max(newest, row.id);
  };
  socket.on('admin-reply', heard);
  socket.on('ai-reply', heard);
  socket.on('user-message', (row) => { newest = Math.max(newest, row.id); });
  socket.on('message-received', ({ id }) => { newest = Math.max(newest, id); });
  socket.on('chat-error', (error) => {
    // The session is new on the first connect: nothing to name yet.
    errors.push(error);
  });
  let announced = false;
  socket.on('connect', () => {
    if (saysWhatItHas) {
      socket.emit('user-connected', newest ? { sessionId, lastMessageId: newest } : { sessionId });
    } else if (!announced) {
      socket.emit('user-connected', { sessionId });
    }
    announced = true;
  });
  return {
    sessionId,
    socket,
    replies,
    errors,
    saysWhatItHas,
    /** Sends a message and resolves once it is stored. */
    say(message) {
      return new Promise((resolve) => {
        socket.once('message-received', resolve);
        socket.emit('user-message', { sessionId, message });
      });
    },
    write(message) {
      if (saysWhatItHas && !socket.connected) return; // it announces itself first
      socket.emit('user-message', { sessionId, message });
    },
  };
}

async function connected(socket) {
  if (socket.connected) return;
  await new Promise((resolve) => socket.once('connect', resolve));
}

/**
 * Runs the flapping network for `seconds` against `targets` (the first also
 * serves the admin) and checks what each visitor received against what is
 * stored: every reply for visitors that say what they have, at least 99%
 * for unchanged widgets, none twice, none of another session.
 */
export async function flap({ targets, token, seconds = 21, cutEvery = 3_000, perKind = 10 }) {
  let twice = 0;
  const [home] = targets;
  const proxy = await startFlappingProxy(targets);
  const admin = io(home, { forceNew: true, auth: { token } });
  const adminErrors = [];
  admin.on('chat-error', (error) => adminErrors.push(error));
  const visitors = [
    ...Array.from({ length: perKind }, () => visitor(proxy.url, false)),
    ...Array.from({ length: perKind }, () => visitor(proxy.url, true)),
  ];
  try {
    await Promise.all([connected(admin), ...visitors.map((v) => connected(v.socket))]);
    // Every session exists before the admin writes to it.
    await Promise.all(visitors.map((v) => v.say('hello')));

    let running = true;
    let sent = 0;
    const replying = (async () => {
      while (running) {
        const to = visitors[sent % visitors.length];
        sent += 1;
        admin.emit('admin-reply', { sessionId: to.sessionId, message: `reply ${sent}` });
        await pause(50);
      }
    })();
    const writing = (async () => {
      let n = 0;
      while (running) {
        n += 1;
        for (const v of visitors) v.write(`message ${n}`);
        await pause(2_000);
      }
    })();
    const started = Date.now();
    let cuts = 0;
    while (Date.now() - started < seconds * 1_000) {
      await pause(cutEvery);
      proxy.cut();
      cuts += 1;
      await pause(200);
      proxy.restore();
    }
    running = false;
    await Promise.all([replying, writing]);

    // The network is back: every visitor names its session once more (the
    // unchanged widget does when its visitor writes), then a last reply to
    // each marks the end of what it can receive.
    await Promise.all(visitors.map(async (v) => {
      await connected(v.socket);
      await v.say('back');
    }));
    const marks = visitors.map((v) => new Promise((resolve) => {
      const seen = (row) => {
        if (row.message === 'the end') {
          v.socket.off('admin-reply', seen);
          resolve();
        }
      };
      v.socket.on('admin-reply', seen);
    }));
    for (const v of visitors) admin.emit('admin-reply', { sessionId: v.sessionId, message: 'the end' });
    await Promise.all(marks);
    assert.deepEqual(adminErrors, [], 'every admin reply was accepted');

    const totals = { unchanged: [0, 0], saying: [0, 0] };
    for (const v of visitors) {
      const response = await fetch(`${home}/api/messages/${v.sessionId}`);
      const stored = (await response.json()).filter((row) => row.senderType !== 'user');
      const storedIds = new Set(stored.map((row) => row.id));
      const all = v.replies.map((row) => row.id);
      const ids = all.filter((id, at) => all.indexOf(id) === at);
      twice += all.length - ids.length;
      assert.ok(all.every((id, at) => at === 0 || all[at - 1] < id), `replies in the order stored: got ${all}`);
      for (const row of v.replies) {
        assert.equal(row.sessionId, v.sessionId, 'only its own session\'s replies');
        assert.ok(storedIds.has(row.id), 'only stored replies');
      }
      const kind = v.saysWhatItHas ? 'saying' : 'unchanged';
      totals[kind][0] += ids.length;
      totals[kind][1] += stored.length;
      if (v.saysWhatItHas) {
        assert.deepEqual(ids, stored.map((row) => row.id), `every reply, in order: got ${ids} of ${stored.map((row) => row.id)}`);
        assert.deepEqual(v.errors, [], 'no chat-error');
      }
    }
    const [got, stored] = totals.unchanged;
    console.log(`${cuts} cuts, ${sent} replies; unchanged widgets received ${got}/${stored} (${(100 * got / stored).toFixed(2)}%), clients naming lastMessageId ${totals.saying[0]}/${totals.saying[1]}; ${twice} twice`);
    assert.equal(twice, 0, 'no reply arrived twice');
    assert.ok(cuts >= 6, 'the network flapped');
    assert.ok(got >= 0.99 * stored, `unchanged widgets received ${got} of ${stored} replies`);
  } finally {
    for (const v of visitors) v.socket.close();
    admin.close();
    proxy.close();
  }
}
