// Nothing missed across reconnects on two nodes: the visitors' network drops
// every 3 s and each reconnect lands on the other node (see ../flapping.mjs);
// then a visitor whose node is killed comes back on the survivor. Run by
// `tests/cluster.rs` (one PostgreSQL database, the Redis adapter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flap } from '../flapping.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../helpers.mjs';

const targets = process.env.SWITCHBOARD_URLS.split(',');

async function adminToken() {
  const response = await fetch(`${targets[0]}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  return (await response.json()).accessToken;
}

test('a flapping network across two nodes: every reply reaches the visitors, once, in order', async () => {
  const token = await adminToken();
  const response = await fetch(`${targets[0]}/api/ai/config`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ isEnabled: false }),
  });
  assert.equal(response.status, 200);
  await flap({ targets, token });
});
