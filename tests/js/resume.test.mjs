// switchboard-args: --resume-answer-timeout-secs 2 --resume-state-ttl-secs 3
// Resume builder (SPEC §6) with the official client, as the existing frontend
// uses it: a plain io(url), upload_resume, user_message, missing_fields →
// update_field → get_updated_resume, and merging fenced json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { SERVER_URL, MOCK_AI_URL, nextEvent, collect, sleep, waitForAsync } from './helpers.mjs';

const reply = (text) => `[[mock:reply]]${text}[[/mock:reply]]`;

const PARSED = {
  Name: 'Ada Lovelace',
  Title: 'Engineer',
  Location: 'London',
  Email: 'ada@example.com',
  Phone: '+44 20 0000 0000',
  Summary: 'First programmer.',
  'Contact Information': { Email: 'ada@example.com', LinkedIn: 'in/ada' },
  Skills: ['Mathematics', 'Analytical Engine'],
  Experience: [{ Position: 'Analyst', Company: 'Babbage & Co', Responsibilities: 'Wrote notes\nFound bugs' }],
  Education: [{ Degree: 'Private tutoring', Institution: 'Home' }],
};

/**
 * Connects and resolves with the socket and the resumeId the server announced:
 * at once when the handshake names a session, else at the first resume event.
 */
function sessionOf(options = {}) {
  return new Promise((resolve, reject) => {
    const socket = io(SERVER_URL, { forceNew: true, reconnection: false, ...options });
    socket.once('resume_session', ({ resumeId }) => resolve({ socket, resumeId }));
    socket.once('connect_error', reject);
    if (!options.auth?.resumeId) socket.emit('get_updated_resume');
  });
}

async function mockRequests() {
  return (await fetch(`${MOCK_AI_URL.replace(/\/v1$/, '')}/__mock/requests`)).json();
}

test('a socket that never touches the resume flow gets no resume session', async () => {
  const socket = io(SERVER_URL, { forceNew: true, reconnection: false });
  try {
    const announced = collect(socket, 'resume_session');
    await new Promise((resolve) => socket.once('connect', resolve));
    const probe = await socket.timeout(5_000).emitWithAck('health');
    assert.equal(probe.status, 'OK');
    await sleep(200);
    assert.deepEqual(announced, []);
    const first = nextEvent(socket, 'resume_session');
    const updated = nextEvent(socket, 'updated_resume');
    socket.emit('get_updated_resume');
    assert.match((await first).resumeId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(await updated, { resumeData: null });
    await sleep(100);
    socket.emit('download_resume');
    await nextEvent(socket, 'download_resume_data');
    assert.equal(announced.length, 1, 'announced once');
  } finally {
    socket.close();
  }
});

test('the frontend journey: upload, chat, missing fields, update, download', async () => {
  const { socket, resumeId } = await sessionOf();
  try {
    assert.match(resumeId, /^[0-9a-f-]{36}$/);
    const done = nextEvent(socket, 'upload_resume_done');
    socket.emit('upload_resume', { rawResumeText: `Ada Lovelace, engineer in London. ${reply(JSON.stringify(PARSED))}` });
    const { resumeData } = await done;
    assert.equal(resumeData.Name, 'Ada Lovelace');
    assert.deepEqual(resumeData.Skills, { General: ['Mathematics', 'Analytical Engine'] }, 'Skills is an object of arrays');
    assert.deepEqual(resumeData.Experience[0].Responsibilities, ['Wrote notes', 'Found bugs']);
    assert.equal(resumeData['Contact Information'].GitHub, '');
    const upload = (await mockRequests()).at(-1).body;
    assert.equal(upload.response_format.type, 'json_object');

    const typing = collect(socket, 'user_message_response_typing');
    const answered = nextEvent(socket, 'user_message_response_done');
    socket.emit('user_message', { message: 'Make my title sharper' });
    const { content } = await answered;
    assert.equal(content, 'Mock reply: Make my title sharper');
    assert.ok(typing.length > 1, 'streamed in several deltas');
    assert.equal(typing.map((t) => t.content).join(''), content);
    const chat = (await mockRequests()).at(-1).body.messages;
    assert.match(chat[0].content, /Ada Lovelace/, 'the model sees the resume');

    const missing = nextEvent(socket, 'missing_fields');
    socket.emit('check_resume_fields', { resumeData: { ...resumeData, Phone: '', Summary: '  ' } });
    const { missingFields } = await missing;
    assert.deepEqual(Object.keys(missingFields), ['Phone', 'Summary']);
    assert.match(missingFields.Phone, /Phone/);

    const updated = nextEvent(socket, 'field_updated');
    socket.emit('update_field', { field: 'Phone', value: '+44 1' });
    assert.deepEqual(await updated, { field: 'Phone', value: '+44 1' });
    socket.emit('update_field', { field: 'Summary', value: 'Wrote the first program.' });
    await nextEvent(socket, 'field_updated');

    const latest = nextEvent(socket, 'updated_resume');
    socket.emit('get_updated_resume');
    const { resumeData: current } = await latest;
    assert.equal(current.Phone, '+44 1');
    assert.equal(current.Summary, 'Wrote the first program.');

    const complete = nextEvent(socket, 'resume_complete');
    socket.emit('check_resume_fields', { resumeData: current });
    assert.equal((await complete).resumeData.Name, 'Ada Lovelace');

    const download = nextEvent(socket, 'download_resume_data');
    socket.emit('download_resume');
    assert.equal((await download).resumeData.Phone, '+44 1');
  } finally {
    socket.close();
  }
});

test('a fenced json block in the answer updates the stored resume', async () => {
  const { socket } = await sessionOf();
  try {
    const answer = 'Here is a better title:\n```json\n{"Title": "Principal Engineer", "Skills": ["Rust"]}\n```\nGood luck!';
    const done = nextEvent(socket, 'user_message_response_done');
    socket.emit('user_message', { message: `Improve my title ${reply(answer)}` });
    assert.equal((await done).content, answer);
    const latest = nextEvent(socket, 'updated_resume');
    socket.emit('get_updated_resume');
    const { resumeData } = await latest;
    assert.equal(resumeData.Title, 'Principal Engineer');
    assert.deepEqual(resumeData.Skills, { General: ['Rust'] });
  } finally {
    socket.close();
  }
});

test('update_field works before anything is stored; download gives the empty skeleton', async () => {
  const { socket } = await sessionOf();
  try {
    const skeleton = nextEvent(socket, 'download_resume_data');
    socket.emit('download_resume');
    const { resumeData } = await skeleton;
    assert.deepEqual(Object.keys(resumeData).sort(), [
      'Awards', 'Contact Information', 'Education', 'Email', 'Experience', 'Location', 'Name', 'Phone', 'Projects', 'Skills', 'Summary', 'Title',
    ]);
    assert.equal(resumeData.Name, '');

    const nothing = nextEvent(socket, 'updated_resume');
    socket.emit('get_updated_resume');
    assert.equal((await nothing).resumeData, null);

    const updated = nextEvent(socket, 'field_updated');
    socket.emit('update_field', { field: 'Name', value: 'Grace Hopper' });
    await updated;
    const latest = nextEvent(socket, 'updated_resume');
    socket.emit('get_updated_resume');
    assert.equal((await latest).resumeData.Name, 'Grace Hopper');
  } finally {
    socket.close();
  }
});

test('invalid model output and bad input answer the event’s error event; the socket stays up', async () => {
  const { socket } = await sessionOf();
  try {
    const notJson = nextEvent(socket, 'upload_resume_error');
    socket.emit('upload_resume', { rawResumeText: `text ${reply('this is not json')}` });
    assert.match((await notJson).error, /unusable|not JSON/i);

    const notObject = nextEvent(socket, 'upload_resume_error');
    socket.emit('upload_resume', { rawResumeText: `text ${reply('[1,2,3]')}` });
    assert.match((await notObject).error, /object/);

    const failing = nextEvent(socket, 'upload_resume_error');
    socket.emit('upload_resume', { rawResumeText: 'text [[mock:status=500]]' });
    assert.ok((await failing).error.length > 0);

    for (const payload of [{}, { rawResumeText: '' }, { rawResumeText: 42 }, { rawResumeText: 'x'.repeat(30_001) }]) {
      const error = nextEvent(socket, 'upload_resume_error');
      socket.emit('upload_resume', payload);
      assert.ok((await error).error.length > 0, JSON.stringify(payload).slice(0, 40));
    }

    const missingMessage = nextEvent(socket, 'user_message_error');
    socket.emit('user_message', {});
    assert.match((await missingMessage).error, /message/);

    const streamFails = nextEvent(socket, 'user_message_response_error');
    socket.emit('user_message', { message: 'hello [[mock:status=500]]' });
    assert.ok((await streamFails).error.length > 0);

    const badCheck = nextEvent(socket, 'error');
    socket.emit('check_resume_fields', { resumeData: 'nope' });
    assert.ok((await badCheck).message.length > 0);

    const unknownField = nextEvent(socket, 'update_field_error');
    socket.emit('update_field', { field: 'Salary', value: 1 });
    assert.match((await unknownField).error, /Salary/);

    const noField = nextEvent(socket, 'update_field_error');
    socket.emit('update_field', 'Name');
    assert.ok((await noField).error.length > 0);

    assert.equal((await socket.timeout(2_000).emitWithAck('health')).status, 'OK');
  } finally {
    socket.close();
  }
});

test('preview asks for each missing field and uses the answers', async () => {
  const { socket } = await sessionOf();
  try {
    socket.emit('update_field', { field: 'Name', value: 'Alan Turing' });
    await nextEvent(socket, 'field_updated');
    const questions = [];
    socket.on('user_message_response_done', ({ content }) => {
      questions.push(content);
      socket.emit('user_response', { value: `answer ${questions.length}` });
    });
    const done = nextEvent(socket, 'preview_resume_done', 10_000);
    socket.emit('preview_resume');
    const { resumeData } = await done;
    assert.equal(questions.length, 7, 'Title, Location, Email, Phone, Summary, Experience, Education');
    assert.equal(resumeData.Name, 'Alan Turing');
    assert.equal(resumeData.Title, 'answer 1');
    assert.equal(resumeData.Experience[0].Description, 'answer 6');
    assert.equal(resumeData.Education[0].Degree, 'answer 7');
  } finally {
    socket.close();
  }
});

test('preview without answers ends with preview_resume_error after the timeout', async () => {
  const { socket } = await sessionOf();
  try {
    const question = nextEvent(socket, 'user_message_response_done');
    const error = nextEvent(socket, 'preview_resume_error', 6_000);
    socket.emit('preview_resume');
    assert.match((await question).content, /Name/);
    assert.match((await error).error, /No answer for Name/);
  } finally {
    socket.close();
  }
});

test('reconnecting with the resumeId restores the state; unknown ids get a new one', async () => {
  const first = await sessionOf();
  first.socket.emit('update_field', { field: 'Title', value: 'Kept across reconnects' });
  await nextEvent(first.socket, 'field_updated');
  first.socket.close();
  await sleep(200);

  const again = await sessionOf({ auth: { resumeId: first.resumeId } });
  try {
    assert.equal(again.resumeId, first.resumeId);
    const latest = nextEvent(again.socket, 'updated_resume');
    again.socket.emit('get_updated_resume');
    assert.equal((await latest).resumeData.Title, 'Kept across reconnects');
  } finally {
    again.socket.close();
  }

  const guessed = await sessionOf({ auth: { resumeId: '00000000-0000-0000-0000-000000000000' } });
  assert.notEqual(guessed.resumeId, '00000000-0000-0000-0000-000000000000');
  guessed.socket.close();
});

test('state expires a while after the socket left', async () => {
  const first = await sessionOf();
  first.socket.emit('update_field', { field: 'Title', value: 'Soon gone' });
  await nextEvent(first.socket, 'field_updated');
  first.socket.close();
  await sleep(3_500);
  const later = await sessionOf({ auth: { resumeId: first.resumeId } });
  try {
    assert.notEqual(later.resumeId, first.resumeId);
    const latest = nextEvent(later.socket, 'updated_resume');
    later.socket.emit('get_updated_resume');
    assert.equal((await latest).resumeData, null);
  } finally {
    later.socket.close();
  }
});

/** Connects naming `resumeId`, with `event` listened for before the handshake. */
function comeBack(resumeId, event) {
  const socket = io(SERVER_URL, { forceNew: true, reconnection: false, autoConnect: false, auth: { resumeId } });
  const arrived = nextEvent(socket, event, 15_000);
  const reopened = nextEvent(socket, 'resume_session');
  socket.connect();
  return { socket, arrived, reopened };
}

test('an answer that finishes after its socket went reaches the next socket of the session', async () => {
  const first = await sessionOf();
  const stats = async () => (await fetch(`${MOCK_AI_URL.replace(/\/v1$/, '')}/__mock/stats`)).json();
  const { completed } = await stats();
  const asked = (await mockRequests()).length;
  first.socket.emit('upload_resume', {
    rawResumeText: `Ada Lovelace. [[mock:first-byte-delay=400]]${reply(JSON.stringify(PARSED))}`,
  });
  await waitForAsync(async () => (await mockRequests()).length > asked, 5_000, 'the model is asked');
  first.socket.close();
  // Back once the model has answered: the answer is kept, and handed to the
  // session's next socket as it opens (had it come back sooner, the answer
  // would have been passed to it as it finished, as in the next test).
  await waitForAsync(async () => (await stats()).completed > completed, 5_000, 'the model answers');
  const again = comeBack(first.resumeId, 'upload_resume_done');
  try {
    assert.equal((await again.reopened).resumeId, first.resumeId);
    assert.equal((await again.arrived).resumeData.Name, 'Ada Lovelace');
    const latest = nextEvent(again.socket, 'updated_resume');
    again.socket.emit('get_updated_resume');
    assert.equal((await latest).resumeData.Name, 'Ada Lovelace', 'the new socket sees the stored resume');
    const extra = collect(again.socket, 'upload_resume_done');
    await sleep(300);
    assert.deepEqual(extra, [], 'handed over once');
  } finally {
    again.socket.close();
  }
});

test('a reply still streaming when its socket went reaches the socket that came back meanwhile', async () => {
  const first = await sessionOf();
  const streaming = nextEvent(first.socket, 'user_message_response_typing');
  first.socket.emit('user_message', { message: 'Tell me more [[mock:words=6]][[mock:delay=250]]' });
  await streaming;
  first.socket.close();
  const again = comeBack(first.resumeId, 'user_message_response_done');
  try {
    await again.reopened;
    assert.equal((await again.arrived).content, 'w1 w2 w3 w4 w5 w6');
  } finally {
    again.socket.close();
  }
});

test('POST /format-resume: 400 with missingFields, 200 with defaults', async () => {
  const post = (body) =>
    fetch(`${SERVER_URL}/format-resume`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const bad = await post({ Name: 'Ada', Title: '', Skills: [] });
  assert.equal(bad.status, 400);
  const { missingFields } = await bad.json();
  assert.deepEqual(missingFields, {
    Title: "Looks like I'm missing your Title. What is it?",
    Skills: "Looks like I'm missing your Skills. What is it?",
  });

  const good = await post({ Name: 'Ada', Skills: { Languages: ['English'] } });
  assert.equal(good.status, 200);
  const { resumeData } = await good.json();
  assert.equal(resumeData.Name, 'Ada');
  assert.equal(resumeData.Title, 'Your Title');
  assert.equal(resumeData.Email, 'your.email@example.com');
  assert.deepEqual(resumeData.Skills, { Languages: ['English'] });

  const notJson = await fetch(`${SERVER_URL}/format-resume`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
  assert.equal(notJson.status, 400);
});
