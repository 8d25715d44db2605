// Through nginx (examples/nginx.conf) in front of two nodes: a widget on the
// default transports (long-polling, then the websocket upgrade) and one on
// long-polling alone talk to an admin connected to the other node directly.
// Run by `tests/cluster.rs`; NGINX_URL is the proxy, SWITCHBOARD_URLS the nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connectTo, nextEvent, sleep, ADMIN_EMAIL, ADMIN_PASSWORD } from '../helpers.mjs';

const PROXY = process.env.NGINX_URL;
const NODES = process.env.SWITCHBOARD_URLS.split(',');

async function adminOn(node) {
  const response = await fetch(`${node}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  const { accessToken } = await response.json();
  return connectTo(node, { auth: { token: accessToken } });
}

for (const transports of [['polling', 'websocket'], ['polling']]) {
  test(`a widget through nginx on ${transports.join(' then ')} reaches admins on every node`, async () => {
    const admins = await Promise.all(NODES.map(adminOn));
    const widget = await connectTo(PROXY, { transports });
    try {
      const sessionId = `nginx_${randomUUID()}`;
      widget.emit('user-connected', { sessionId });
      await sleep(150);
      for (let i = 0; i < 5; i += 1) {
        const atAdmins = admins.map((admin) => nextEvent(admin, 'user-message'));
        const received = nextEvent(widget, 'message-received');
        widget.emit('user-message', { sessionId, message: `through nginx ${i}` });
        await received;
        for (const row of await Promise.all(atAdmins)) assert.equal(row.message, `through nginx ${i}`);
      }
      const reply = nextEvent(widget, 'admin-reply');
      admins[1].emit('admin-reply', { sessionId, message: 'answered from the second node' });
      assert.equal((await reply).message, 'answered from the second node');
      if (transports.length === 1) assert.equal(widget.io.engine.transport.name, 'polling');
    } finally {
      widget.close();
      admins.forEach((admin) => admin.close());
    }
  });
}
