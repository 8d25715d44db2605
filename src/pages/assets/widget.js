// The Switchboard visitor chat widget. Add it to any page with
//   <script src="https://your-switchboard/widget.js" data-title="Chat with us" data-color="#2563eb"></script>
// It talks to the server its script came from (or `data-server`). The page's
// origin must be in CORS_ORIGINS for the history requests.
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || window.__switchboardWidget) return;
  window.__switchboardWidget = true;

  var server = script.getAttribute('data-server') || new URL(script.src, window.location.href).origin;
  var title = script.getAttribute('data-title') || 'Chat with us';
  var color = script.getAttribute('data-color') || '#2563eb';
  if (!(window.CSS && CSS.supports('color', color))) color = '#2563eb';
  var HUMAN_REQUEST = 'I would like to talk to a human agent';
  var HANDOFF_TEXT = 'Connecting you to our support team';
  var STORAGE_KEY = 'switchboard.widget.session';

  function newSessionId() {
    var bytes = new Uint8Array(24);
    crypto.getRandomValues(bytes);
    return 'w-' + Array.from(bytes, function (b) { return b.toString(16).padStart(2, '0'); }).join('');
  }
  var sessionId = localStorage.getItem(STORAGE_KEY);
  if (!sessionId || sessionId.length < 32) {
    sessionId = newSessionId();
    localStorage.setItem(STORAGE_KEY, sessionId);
  }

  // --- The widget's DOM, in a shadow root so the page's styles do not reach it.
  var host = document.createElement('div');
  host.id = 'switchboard-widget';
  document.body.appendChild(host);
  var root = host.attachShadow({ mode: 'open' });
  var style = document.createElement('style');
  style.textContent = [
    ':host { all: initial; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }',
    '.launcher { position: fixed; right: 16px; bottom: 16px; z-index: 2147483000; border: 0; border-radius: 999px; padding: 12px 18px; background: var(--c); color: #fff; font: inherit; font-weight: 600; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.2); }',
    '.panel { position: fixed; right: 16px; bottom: 16px; z-index: 2147483001; width: min(380px, calc(100vw - 32px)); height: min(560px, calc(100vh - 32px)); display: flex; flex-direction: column; background: #fff; color: #1f2933; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.25); overflow: hidden; }',
    '.panel[hidden], .launcher[hidden] { display: none; }',
    'header { display: flex; align-items: center; gap: 8px; padding: 12px; background: var(--c); color: #fff; }',
    'header h2 { flex: 1; margin: 0; font-size: 1rem; }',
    'header button { border: 0; background: transparent; color: #fff; font-size: 1.3rem; cursor: pointer; }',
    '.log { flex: 1; overflow: auto; padding: 10px; display: flex; flex-direction: column; gap: 6px; }',
    '.msg { max-width: 85%; padding: 8px 10px; border-radius: 10px; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .95rem; unicode-bidi: isolate; }',
    '.msg.user { align-self: flex-end; background: var(--c); color: #fff; }',
    '.msg.ai, .msg.admin { align-self: flex-start; background: #f1f5f9; }',
    '.msg .who { display: block; font-size: .72rem; opacity: .75; }',
    '.msg.pending { opacity: .6; }',
    '.note { font-size: .85rem; color: #616e7c; padding: 0 10px; min-height: 1.1em; }',
    '.notice { margin: 0 10px; padding: 6px 8px; border-radius: 6px; background: #fef3c7; color: #78350f; font-size: .85rem; }',
    '.error { color: #b42318; font-size: .85rem; padding: 0 10px; min-height: 1.1em; }',
    'form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #dfe3e8; flex-wrap: wrap; }',
    'input { flex: 1; min-width: 0; border: 1px solid #dfe3e8; border-radius: 6px; padding: 8px; font: inherit; }',
    'form button, .human { border: 1px solid var(--c); background: var(--c); color: #fff; border-radius: 6px; padding: 8px 12px; font: inherit; cursor: pointer; }',
    '.human { background: #fff; color: var(--c); margin: 0 10px 8px; }',
    'button:focus-visible, input:focus-visible { outline: 3px solid #93c5fd; outline-offset: 1px; }',
    '.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }',
  ].join('\n');
  root.appendChild(style);
  host.style.setProperty('--c', color);

  // Bidi overrides and isolates in someone's text would reorder what follows
  // them: they are shown as U+FFFD instead.
  var BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

  function shown(text) {
    return String(text).replace(BIDI_CONTROLS, '\uFFFD');
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = shown(text);
    return node;
  }

  var launcher = el('button', 'launcher', title);
  launcher.type = 'button';
  launcher.setAttribute('aria-label', 'Open chat: ' + title);
  var panel = el('section', 'panel');
  panel.hidden = true;
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-label', title);
  var header = el('header');
  header.append(el('h2', null, title));
  var close = el('button', null, '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Close chat');
  header.append(close);
  var log = el('div', 'log');
  log.setAttribute('aria-live', 'polite');
  log.setAttribute('aria-label', 'Messages');
  var notice = el('p', 'notice');
  notice.hidden = true;
  var activity = el('p', 'note');
  activity.setAttribute('aria-live', 'polite');
  var errorLine = el('p', 'error');
  errorLine.setAttribute('role', 'alert');
  var human = el('button', 'human', 'Talk to a human');
  human.type = 'button';
  var form = el('form');
  var label = el('label', 'sr', 'Your message');
  label.htmlFor = 'switchboard-input';
  var input = el('input');
  input.id = 'switchboard-input';
  input.placeholder = 'Type a message…';
  input.autocomplete = 'off';
  input.maxLength = 5000;
  var send = el('button', null, 'Send');
  send.type = 'submit';
  form.append(label, input, send);
  panel.append(header, log, notice, activity, errorLine, human, form);
  root.append(launcher, panel);

  // --- Conversation state ----------------------------------------------------
  var socket = null;
  var everConnected = false;
  var seen = new Set();
  var lastId = 0;
  var outbox = [];    // typed, not yet sent on a live connection
  var awaiting = [];  // sent on this connection, waiting for `message-received`
  var unsure = [];    // sent on a connection that dropped before confirming
  var typingSent = false;
  var typingTimer = null;
  var activityTimer = null;

  function addRow(row) {
    if (row.sessionId !== sessionId || seen.has(row.id)) return;
    seen.add(row.id);
    lastId = Math.max(lastId, row.id);
    var node = el('div', 'msg ' + row.senderType);
    node.dataset.id = row.id;
    var who = { user: 'You', ai: 'Assistant', admin: 'Support' }[row.senderType] || '';
    node.append(el('span', 'who', who));
    node.append(document.createTextNode(shown(row.message)));
    var after = Array.prototype.find.call(log.children, function (child) {
      return child.dataset.id && Number(child.dataset.id) > row.id;
    });
    log.insertBefore(node, after || log.querySelector('.pending'));
    // The notice follows the newest answer: a hand-off, a person, or the AI again.
    if (row.id === lastId && row.senderType !== 'user') {
      var handoff = row.senderType === 'ai' && row.message.indexOf(HANDOFF_TEXT) !== -1;
      notice.textContent = handoff ? 'A person from our team will answer here.'
        : row.senderType === 'admin' ? 'You are talking with our support team.' : '';
      notice.hidden = !notice.textContent;
    }
    log.scrollTop = log.scrollHeight;
  }

  function confirm(entry, id) {
    entry.node.remove();
    addRow({ id: id, sessionId: sessionId, senderType: 'user', message: entry.text });
  }

  function showActivity(text) {
    activity.textContent = text;
    clearTimeout(activityTimer);
    if (text) activityTimer = setTimeout(function () { activity.textContent = ''; }, 30000);
  }

  function history(after) {
    var path = '/api/messages/' + encodeURIComponent(sessionId) + (after ? '?after=' + after : '');
    return fetch(server + path).then(function (response) {
      return response.ok ? response.json() : [];
    }).catch(function () { return null; });
  }

  function transmit(entry) {
    awaiting.push(entry);
    socket.emit('user-message', { sessionId: sessionId, message: entry.text });
  }

  function flush() {
    var queued = outbox;
    outbox = [];
    queued.forEach(transmit);
  }

  // After a reconnect: what the server stored meanwhile, then the messages
  // whose fate the drop hid (stored → shown, else sent again), then the rest.
  function resync() {
    history(lastId).then(function (rows) {
      if (rows === null) { setTimeout(resync, 1000); return; }
      rows.forEach(function (row) {
        if (row.senderType === 'user') {
          var index = unsure.findIndex(function (entry) { return entry.text === row.message; });
          if (index !== -1) { confirm(unsure.splice(index, 1)[0], row.id); return; }
        }
        addRow(row);
      });
      outbox = unsure.concat(outbox);
      unsure = [];
      if (socket.connected) flush();
    });
  }

  function connect() {
    socket = sioConnect(server);
    socket.on('connect', function () {
      errorLine.textContent = '';
      socket.emit('user-connected', { sessionId: sessionId });
      if (everConnected) resync(); else flush();
      everConnected = true;
    });
    socket.on('disconnect', function () {
      unsure = unsure.concat(awaiting);
      awaiting = [];
      errorLine.textContent = 'Connection lost; reconnecting…';
    });
    socket.on('message-received', function (receipt) {
      var entry = awaiting.shift();
      if (entry && receipt) confirm(entry, receipt.id);
    });
    socket.on('ai-reply', function (row) { if (row) addRow(row); showActivity(''); });
    socket.on('admin-reply', function (row) { if (row) addRow(row); showActivity(''); });
    socket.on('ai-thinking', function (state) {
      if (state && state.sessionId === sessionId) showActivity(state.isThinking ? 'The assistant is thinking…' : '');
    });
    socket.on('admin-typing', function (state) {
      if (state && state.sessionId === sessionId) showActivity(state.isTyping ? 'Support is typing…' : '');
    });
    socket.on('chat-error', function (error) {
      // A refused message is the oldest unconfirmed one; a failed AI answer is not about a send.
      if (!error || error.code !== 'AI_PROVIDER_ERROR') {
        var entry = awaiting.shift();
        if (entry) {
          // Refused, so not stored: the text goes back to the input to fix and resend.
          entry.node.remove();
          if (!input.value) input.value = entry.text;
        }
      }
      errorLine.textContent = (error && error.message) || 'The message was not accepted';
    });
  }

  function queue(text) {
    var node = el('div', 'msg user pending');
    node.append(el('span', 'who', 'You · sending'));
    node.append(document.createTextNode(shown(text)));
    log.append(node);
    log.scrollTop = log.scrollHeight;
    var entry = { text: text, node: node };
    if (socket && socket.connected && !unsure.length) transmit(entry); else outbox.push(entry);
  }

  var opened = false;
  function openPanel() {
    panel.hidden = false;
    launcher.hidden = true;
    input.focus();
    if (opened) return;
    opened = true;
    history(0).then(function (rows) {
      (rows || []).forEach(addRow);
      connect();
    });
  }

  launcher.addEventListener('click', openPanel);
  close.addEventListener('click', function () {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.focus();
  });
  panel.addEventListener('keydown', function (event) {
    if (event.key === 'Escape') close.click();
  });
  human.addEventListener('click', function () { queue(HUMAN_REQUEST); });
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { errorLine.textContent = 'Type a message first'; return; }
    errorLine.textContent = '';
    input.value = '';
    stopTyping();
    queue(text);
  });
  input.addEventListener('input', function () {
    if (!socket || !socket.connected) return;
    if (!typingSent) { socket.emit('user-typing', { sessionId: sessionId, isTyping: true }); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 1500);
  });
  function stopTyping() {
    if (typingSent && socket) socket.emit('user-typing', { sessionId: sessionId, isTyping: false });
    typingSent = false;
  }

  window.SwitchboardWidget = { open: openPanel, sessionId: sessionId };
})();
