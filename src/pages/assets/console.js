// The admin live-chat console (/console): one socket per tab, the session
// list from GET /api/chats, a conversation from GET /api/chats/:id, live rows
// from the socket, and a resync (the list, and GET /api/messages/:id?after=)
// after every reconnect so that nothing sent during a drop is missed.
'use strict';

(function () {
  var TOKEN_KEY = 'switchboard.console.token';
  var $ = function (id) { return document.getElementById(id); };
  var token = sessionStorage.getItem(TOKEN_KEY);
  var socket = null;
  var everConnected = false;
  var sessions = [];
  var current = null;
  var rows = new Map();
  var lastId = 0;
  var thinking = {};
  var typingSent = false;
  var typingTimer = null;
  var visitorTypingTimer = null;
  var listTimer = null;

  function show(signedIn) {
    $('login').classList.toggle('hidden', signedIn);
    $('app').classList.toggle('hidden', !signedIn);
    $('logout').classList.toggle('hidden', !signedIn);
    $('settings-toggle').classList.toggle('hidden', !signedIn);
  }

  function setStatus(text) { $('connection').textContent = text; }

  // --- REST with the admin's token, refreshed once on a 401 ---------------
  function api(path, options) {
    options = Object.assign({}, options, { token: token });
    return apiRequest(path, options).then(function (result) {
      if (result.status !== 401) return result;
      return refreshToken().then(function (fresh) {
        if (!fresh) { signOut('Your session ended; sign in again'); return result; }
        return apiRequest(path, Object.assign({}, options, { token: token }));
      });
    });
  }

  function refreshToken() {
    return apiRequest('/api/auth/refresh', { method: 'POST', body: {} }).then(function (result) {
      if (!result.ok || !result.body || !result.body.accessToken) return false;
      token = result.body.accessToken;
      sessionStorage.setItem(TOKEN_KEY, token);
      return true;
    });
  }

  // --- Sign in and out -----------------------------------------------------
  $('login').addEventListener('submit', function (event) {
    event.preventDefault();
    var email = $('email').value.trim();
    var password = $('password').value;
    var error = $('login-error');
    if (!email || !password) { error.textContent = 'Enter your email and password'; return; }
    error.textContent = '';
    apiRequest('/api/auth/login', { method: 'POST', body: { email: email, password: password } })
      .then(function (result) {
        if (!result.ok) { error.textContent = errorText(result, 'Sign-in failed'); return; }
        if (!result.body.user || !result.body.user.isAdmin) {
          error.textContent = 'This account is not an admin';
          return;
        }
        token = result.body.accessToken;
        sessionStorage.setItem(TOKEN_KEY, token);
        $('password').value = '';
        start();
      });
  });

  $('logout').addEventListener('click', function () {
    apiRequest('/api/auth/logout', { method: 'POST', body: {} });
    signOut('');
  });

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    token = null;
    if (socket) { socket.close(); socket = null; }
    everConnected = false;
    show(false);
    $('login-error').textContent = message;
  }

  // --- The socket ----------------------------------------------------------
  function connect() {
    if (socket) socket.close();
    socket = sioConnect(window.location.href, { auth: function () { return { token: token }; } });
    setStatus('Connecting…');
    socket.on('connect', function () {
      setStatus('Connected');
      if (everConnected) resync();
      everConnected = true;
    });
    socket.on('disconnect', function () { setStatus('Reconnecting…'); });
    socket.on('connect_error', function () { setStatus('Reconnecting…'); });
    ['user-message', 'ai-reply', 'admin-reply'].forEach(function (event) {
      socket.on(event, function (row) {
        if (row && row.sessionId === current) addRows([row]);
        if (event !== 'user-message' && row) setThinking(row.sessionId, false);
        refreshListSoon();
      });
    });
    socket.on('handoff-requested', refreshListSoon);
    socket.on('chat-list-update', refreshListSoon);
    socket.on('user-typing', function (typing) {
      if (!typing || typing.sessionId !== current) return;
      $('typing').textContent = typing.isTyping ? 'The visitor is typing…' : '';
      clearTimeout(visitorTypingTimer);
      if (typing.isTyping) visitorTypingTimer = setTimeout(function () { $('typing').textContent = ''; }, 6000);
    });
    socket.on('ai-thinking', function (state) {
      if (state) setThinking(state.sessionId, state.isThinking);
    });
    socket.on('chat-error', function (error) {
      if (error && (error.code === 'TOKEN_EXPIRED' || error.code === 'FORBIDDEN')) {
        refreshToken().then(function (fresh) {
          if (fresh) connect(); else signOut('Your session ended; sign in again');
        });
        return;
      }
      $('reply-error').textContent = (error && error.message) || 'The server refused that';
    });
  }

  function setThinking(sessionId, on) {
    thinking[sessionId] = !!on;
    if (sessionId === current) renderConversationState();
  }

  // --- Session list ----------------------------------------------------------
  function refreshListSoon() {
    clearTimeout(listTimer);
    listTimer = setTimeout(loadSessions, 100);
  }

  function loadSessions() {
    return api('/api/chats').then(function (result) {
      if (!result.ok) return;
      sessions = result.body;
      renderSessions();
      renderConversationState();
    });
  }

  function needsHuman(session) {
    var last = session.messages && session.messages[session.messages.length - 1];
    return session.handedOffToAdmin && (!last || last.senderType !== 'admin');
  }

  function renderSessions() {
    var list = $('sessions');
    var focused = document.activeElement && document.activeElement.dataset.session;
    list.replaceChildren();
    sessions.forEach(function (session) {
      var item = el('li');
      item.setAttribute('role', 'option');
      item.tabIndex = 0;
      item.dataset.session = session.sessionId;
      item.setAttribute('aria-selected', String(session.sessionId === current));
      var row = el('div', 'row');
      row.append(el('span', 'name', session.sessionId));
      if (session.unreadCount > 0) row.append(el('span', 'badge unread', session.unreadCount + ' unread'));
      if (needsHuman(session)) row.append(el('span', 'badge human', 'needs a human'));
      row.append(el('span', 'badge', session.handedOffToAdmin ? 'human answers' : 'AI answers'));
      item.append(row);
      var last = session.messages && session.messages[session.messages.length - 1];
      item.append(el('div', 'preview', last ? last.senderType + ': ' + last.message : 'no messages yet'));
      item.addEventListener('click', function () { open(session.sessionId); });
      item.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); open(session.sessionId); }
        if (event.key === 'ArrowDown' && item.nextSibling) { event.preventDefault(); item.nextSibling.focus(); }
        if (event.key === 'ArrowUp' && item.previousSibling) { event.preventDefault(); item.previousSibling.focus(); }
      });
      list.append(item);
      if (focused === session.sessionId) item.focus();
    });
  }

  // --- Conversation ----------------------------------------------------------
  function open(sessionId) {
    current = sessionId;
    rows = new Map();
    lastId = 0;
    $('messages').replaceChildren();
    $('typing').textContent = '';
    $('reply-error').textContent = '';
    $('conversation-title').textContent = 'Conversation ' + sessionId;
    $('composer').classList.remove('hidden');
    renderSessions();
    api('/api/chats/' + encodeURIComponent(sessionId)).then(function (result) {
      if (result.ok && current === sessionId) addRows(result.body.messages);
      renderConversationState();
    });
  }

  function addRows(list) {
    var box = $('messages');
    var nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    list.forEach(function (row) {
      if (rows.has(row.id)) return;
      rows.set(row.id, row);
      lastId = Math.max(lastId, row.id);
      var node = el('div', 'msg ' + row.senderType);
      node.dataset.id = row.id;
      var who = { user: 'Visitor', ai: 'AI', admin: 'Admin' }[row.senderType] || row.senderType;
      node.append(el('span', 'who', who + ' · ' + timeOf(row.timestamp)));
      node.append(textNode(row.message));
      var after = Array.prototype.find.call(box.children, function (child) { return Number(child.dataset.id) > row.id; });
      box.insertBefore(node, after || null);
    });
    if (nearBottom) box.scrollTop = box.scrollHeight;
    markRead();
  }

  function markRead() {
    if (document.hidden) return;
    var unread = Array.from(rows.values()).filter(function (row) { return row.senderType === 'user' && !row.isRead; });
    unread.forEach(function (row) { row.isRead = true; });
    if (!unread.length) return;
    Promise.all(unread.map(function (row) { return api('/api/messages/' + row.id, { method: 'PATCH' }); }))
      .then(refreshListSoon);
  }
  document.addEventListener('visibilitychange', markRead);

  function renderConversationState() {
    if (!current) return;
    var session = sessions.find(function (s) { return s.sessionId === current; });
    var handedOff = session && session.handedOffToAdmin;
    var text = handedOff ? 'A human answers this conversation.' : 'The AI answers this conversation; your reply takes it over.';
    if (thinking[current]) text += ' The AI is thinking…';
    $('conversation-state').textContent = text;
    $('release').disabled = !handedOff;
    $('takeover').disabled = !!handedOff;
  }

  function resync() {
    loadSessions();
    if (!current) return;
    var sessionId = current;
    api('/api/messages/' + encodeURIComponent(sessionId) + '?after=' + lastId).then(function (result) {
      if (result.ok && current === sessionId) addRows(result.body);
    });
  }

  // --- Replying --------------------------------------------------------------
  $('reply').addEventListener('keydown', function (event) {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      $('composer').requestSubmit();
    }
  });

  $('reply').addEventListener('input', function () {
    if (!current || !socket) return;
    if (!typingSent) { socket.emit('admin-typing', { sessionId: current, isTyping: true }); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 1500);
  });

  function stopTyping() {
    if (typingSent && current && socket) socket.emit('admin-typing', { sessionId: current, isTyping: false });
    typingSent = false;
  }

  $('composer').addEventListener('submit', function (event) {
    event.preventDefault();
    var text = $('reply').value.trim();
    if (!text) { $('reply-error').textContent = 'Type a reply first'; return; }
    $('reply-error').textContent = '';
    stopTyping();
    socket.emit('admin-reply', { sessionId: current, message: text });
    $('reply').value = '';
  });

  $('takeover').addEventListener('click', function () {
    if (current) socket.emit('admin-takeover', { sessionId: current });
  });

  $('release').addEventListener('click', function () {
    if (current) socket.emit('admin-release', { sessionId: current });
  });

  // --- AI settings -----------------------------------------------------------
  $('settings-toggle').addEventListener('click', function () {
    var form = $('settings');
    var opening = form.classList.contains('hidden');
    form.classList.toggle('hidden', !opening);
    $('settings-toggle').setAttribute('aria-expanded', String(opening));
    if (opening) loadSettings();
  });

  function loadSettings() {
    api('/api/ai/config').then(function (result) {
      if (!result.ok) { $('settings-error').textContent = errorText(result, 'Could not read the settings'); return; }
      fillSettings(result.body);
    });
  }

  function fillSettings(config) {
    $('ai-enabled').checked = config.isEnabled;
    $('ai-provider').value = config.provider;
    $('ai-effective').textContent = 'Answers come from: ' + config.effectiveProvider;
    $('ai-model').value = config.model;
    $('ai-prompt').value = config.systemPrompt;
    $('ai-temperature').value = config.temperature;
    $('ai-max-tokens').value = config.maxTokens;
  }

  $('ai-enabled').addEventListener('change', function () {
    api('/api/ai/toggle', { method: 'POST', body: { isEnabled: $('ai-enabled').checked } }).then(function (result) {
      if (result.ok) { fillSettings(result.body); $('settings-error').textContent = ''; }
      else $('settings-error').textContent = errorText(result, 'Could not switch the AI');
    });
  });

  $('settings').addEventListener('submit', function (event) {
    event.preventDefault();
    var temperature = Number($('ai-temperature').value);
    var maxTokens = Number($('ai-max-tokens').value);
    if (!(temperature >= 0 && temperature <= 2)) { $('settings-error').textContent = 'Temperature is a number from 0 to 2'; return; }
    if (!(Number.isInteger(maxTokens) && maxTokens > 0)) { $('settings-error').textContent = 'Max tokens is a whole number above 0'; return; }
    var change = {
      isEnabled: $('ai-enabled').checked,
      provider: $('ai-provider').value,
      model: $('ai-model').value.trim(),
      systemPrompt: $('ai-prompt').value,
      temperature: temperature,
      maxTokens: maxTokens,
    };
    api('/api/ai/config', { method: 'PUT', body: change }).then(function (result) {
      if (!result.ok) { $('settings-error').textContent = errorText(result, 'Could not save the settings'); return; }
      fillSettings(result.body);
      $('settings-error').textContent = '';
      setStatus('Settings saved');
    });
  });

  // --- Start -----------------------------------------------------------------
  function start() {
    show(true);
    connect();
    loadSessions();
  }

  if (token) {
    api('/api/auth/verify').then(function (result) {
      if (result.ok && result.body.user && result.body.user.isAdmin) start();
      else signOut('');
    });
  } else {
    show(false);
  }
})();
