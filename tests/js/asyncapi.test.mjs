// /api/asyncapi.json: a valid AsyncAPI 3 document (checked by the AsyncAPI
// project's own parser), and every event a client sees in journeys through
// the three socket flows is one the document says the server sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parser } from '@asyncapi/parser';
import { SERVER_URL, connect, login, nextEvent, sleep, waitFor } from './helpers.mjs';

async function fetchDocument() {
  const response = await fetch(`${SERVER_URL}/api/asyncapi.json`);
  assert.equal(response.status, 200);
  return response.json();
}

/** Event names of the document's operations with `action`. */
function eventsWith(document, action) {
  return new Set(
    Object.values(document.operations)
      .filter((operation) => operation.action === action)
      .map((operation) => {
        const key = operation.messages[0].$ref.split('/').pop();
        return document.components.messages[key].name;
      }),
  );
}

/** Every event name `socket` receives, into `seen`. */
function record(socket, seen) {
  socket.onAny((event) => seen.add(event));
  return socket;
}

test('the document is valid AsyncAPI 3', async () => {
  const raw = await fetchDocument();
  assert.match(raw.asyncapi, /^3\./);
  const { document, diagnostics } = await new Parser().parse(JSON.stringify(raw));
  const problems = diagnostics.filter((d) => d.severity <= 1);
  assert.deepEqual(problems.map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`), []);
  assert.ok(document);
  const userMessage = document.operations().get('livechat.client.user-message');
  assert.equal(userMessage.action(), 'receive');
  const payload = userMessage.messages()[0].payload();
  assert.deepEqual(payload.required(), ['sessionId', 'message']);
  assert.equal(payload.properties().message.type(), 'string');
});

test('every event a client receives is documented as sent', async () => {
  const raw = await fetchDocument();
  const sent = eventsWith(raw, 'send');
  const seen = new Set();
  const { token } = await login();
  const admin = record(await connect({ auth: { token } }), seen);
  const widget = record(await connect(), seen);
  const assistant = record(await connect({ auth: { clientKey: 'asyncapi-test-key-0001' } }), seen);
  const resume = record(await connect(), seen);
  try {
    // Live chat: a message, the AI's answer, an admin's reply, typing, a refusal.
    const sessionId = `asyncapi-${Date.now()}-session`;
    widget.emit('user-connected', { sessionId });
    const aiReply = nextEvent(widget, 'ai-reply', 10_000);
    widget.emit('user-message', { sessionId, message: 'hello there' });
    await aiReply;
    widget.emit('user-typing', { sessionId, isTyping: true });
    const adminReply = nextEvent(widget, 'admin-reply');
    admin.emit('admin-typing', { sessionId, isTyping: true });
    admin.emit('admin-reply', { sessionId, message: 'a human here' });
    await adminReply;
    const refused = nextEvent(widget, 'chat-error');
    widget.emit('user-message', { sessionId });
    await refused;

    // Assistant: a streamed answer and a refusal.
    const complete = nextEvent(assistant, 'stream_complete', 10_000);
    assistant.emit('stream_chat', { message: 'stream something' });
    await complete;
    const streamError = nextEvent(assistant, 'stream_error');
    assistant.emit('stream_chat', {});
    await streamError;

    // Resume: a session opens, fields are missing, a refusal.
    const missing = nextEvent(resume, 'missing_fields');
    resume.emit('check_resume_fields', { resumeData: { Name: 'Ada' } });
    await missing;
    const updateError = nextEvent(resume, 'update_field_error');
    resume.emit('update_field', { field: 'NoSuchField', value: 1 });
    await updateError;
    await sleep(200);

    for (const expected of ['message-received', 'ai-reply', 'user-message', 'stream_chunk', 'resume_session']) {
      assert.ok(seen.has(expected), `the journey saw no '${expected}'`);
    }
    const undocumented = [...seen].filter((event) => !sent.has(event));
    assert.deepEqual(undocumented, [], 'events received but not documented');
  } finally {
    for (const socket of [admin, widget, assistant, resume]) socket.close();
  }
});

test('a client event the document does not list is not handled', async () => {
  const raw = await fetchDocument();
  const received = eventsWith(raw, 'receive');
  for (const event of ['user-message', 'stream_chat', 'check_resume_fields', 'health']) {
    assert.ok(received.has(event), event);
  }
  const socket = await connect();
  try {
    const seen = new Set();
    record(socket, seen);
    socket.emit('not-an-event', { any: 1 });
    await sleep(300);
    await waitFor(() => socket.connected, 1_000, 'the socket to stay up');
    assert.deepEqual([...seen], []);
  } finally {
    socket.close();
  }
});
