// switchboard-args: --socket-events-per-sec 100000 --socket-event-burst 100000
// Hostile payloads on every event of every flow: each answers (or ignores) them,
// the socket stays connected, and the server keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from './helpers.mjs';

const EVENTS = [
  'user-connected', 'user-message', 'user-typing', 'admin-reply', 'admin-typing', 'admin-release',
  'upload_resume', 'user_message', 'check_resume_fields', 'preview_resume', 'user_response',
  'update_field', 'get_updated_resume', 'download_resume', 'health', 'no-such-event',
];

let deep = {};
for (let i = 0; i < 300; i += 1) deep = { a: deep };

const PAYLOADS = [
  undefined, null, 0, -1, 1e308, true, '', 'text', [], [1, [2, [3]]], {}, deep,
  { sessionId: null, message: null }, { sessionId: {}, message: [] }, { sessionId: 'x'.repeat(10_000), message: 'y' },
  { rawResumeText: {} }, { resumeData: [] }, { field: {}, value: undefined }, { field: '__proto__', value: 1 },
  { message: '\u0000\uffff\ud800' }, { sessionId: '../../etc/passwd', message: 'hi' },
];

test('every event survives every hostile payload', async () => {
  const socket = await connect({ transports: ['websocket'] });
  try {
    let disconnected = false;
    socket.on('disconnect', () => (disconnected = true));
    for (const event of EVENTS) {
      for (const payload of PAYLOADS) {
        if (payload === undefined) socket.emit(event);
        else socket.emit(event, payload);
        socket.emit(event, payload, 'extra', { args: true });
      }
    }
    const answer = await socket.timeout(5_000).emitWithAck('health');
    assert.equal(answer.status, 'OK');
    assert.equal(disconnected, false);
  } finally {
    socket.close();
  }
});
