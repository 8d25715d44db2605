// Shared helpers for the compatibility tests. The Rust runner
// (tests/js_compat.rs) starts a fresh server for each test file and passes its
// address and credentials in the environment.
import { createHmac } from 'node:crypto';
import { io } from 'socket.io-client';

export const SERVER_URL = process.env.SWITCHBOARD_URL;
export const MOCK_AI_URL = process.env.MOCK_AI_URL;
export const ADMIN_EMAIL = process.env.ADMIN_EMAIL;
export const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;

if (!SERVER_URL) {
  throw new Error('SWITCHBOARD_URL is not set: run these tests through `cargo test --test js_compat`');
}

/** Opens a socket and resolves once it is connected. */
export function connect(options = {}) {
  return connectTo(SERVER_URL, options);
}

/** Opens a socket to the server at `url` (one node of several). */
export function connectTo(url, options = {}) {
  const socket = io(url, { forceNew: true, reconnection: false, timeout: 10_000, ...options });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Resolves with the next `event` payload on `socket`, or rejects after `ms`. */
export function nextEvent(socket, event, ms = 5_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, onEvent);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    function onEvent(payload) {
      clearTimeout(timer);
      resolve(payload);
    }
    socket.once(event, onEvent);
  });
}

/** Collects every `event` payload on `socket` into the returned array. */
export function collect(socket, event) {
  const seen = [];
  socket.on(event, (payload) => seen.push(payload));
  return seen;
}

/** Waits until `predicate()` is true, polling every 10 ms. */
export async function waitFor(predicate, ms = 5_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits until the async `predicate()` resolves true, asking again every 20 ms. */
export async function waitForAsync(predicate, ms = 5_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves when `ms` passed; for asserting that nothing arrives. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Logs in through the REST API and returns the JSON body. */
export async function login(email = ADMIN_EMAIL, password = ADMIN_PASSWORD) {
  const response = await fetch(`${SERVER_URL}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (!response.ok) throw new Error(`login failed: ${response.status}`);
  return response.json();
}

/** A JSON request to the server; resolves with `{status, body, headers}`. */
export async function api(path, { token, method = 'GET', body, headers = {} } = {}) {
  const all = { 'content-type': 'application/json', ...headers };
  if (token) all.authorization = `Bearer ${token}`;
  const response = await fetch(`${SERVER_URL}${path}`, {
    method,
    headers: all,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

/** An HS256 JWT with the server's test secret, for forging tokens. */
export function signJwt(claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
  const signature = createHmac('sha256', process.env.JWT_SECRET).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}
