// The streaming assistant playground (/playground). The browser is an
// anonymous caller with its own key (X-Client-Key, and `auth.clientKey` on the
// socket), kept in localStorage; the open conversation is in the URL's hash,
// so a reload shows its whole history.
'use strict';

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var KEY_STORAGE = 'switchboard.playground.key';
  var clientKey = localStorage.getItem(KEY_STORAGE);
  if (!clientKey) {
    var bytes = new Uint8Array(24);
    crypto.getRandomValues(bytes);
    clientKey = 'pg-' + Array.from(bytes, function (b) { return b.toString(16).padStart(2, '0'); }).join('');
    localStorage.setItem(KEY_STORAGE, clientKey);
  }
  var current = new URLSearchParams(location.hash.slice(1)).get('c');
  var streaming = null; // messageId of the answer streaming now
  var everConnected = false;

  function api(path, options) {
    return apiRequest(path, Object.assign({ headers: { 'x-client-key': clientKey } }, options));
  }

  var socket = sioConnect(window.location.href, { auth: { clientKey: clientKey } });
  socket.on('connect', function () {
    $('connection').textContent = 'Connected';
    if (current) socket.emit('join_conversation', current);
    if (everConnected) { loadList(); if (current && !streaming) openConversation(current); }
    everConnected = true;
  });
  socket.on('disconnect', function () { $('connection').textContent = 'Reconnecting…'; });

  socket.on('stream_start', function (start) {
    if (current && start.conversationId !== current) return;
    if (!current) setCurrent(start.conversationId);
    streaming = start.messageId;
    bubble(start.messageId, 'assistant', '');
    $('stop').disabled = false;
  });
  socket.on('stream_chunk', function (chunk) {
    if (chunk.conversationId !== current) return;
    bubble(chunk.messageId, 'assistant', chunk.content);
  });
  socket.on('stream_complete', function (done) {
    if (done.conversationId !== current) return;
    if (done.conversation) render(done.conversation);
    finishStream();
    loadList();
  });
  socket.on('stream_error', function (error) {
    $('error').textContent = error.message || 'The assistant failed';
    if (!error.messageId || error.messageId === streaming) finishStream();
  });
  socket.on('new_message', function (message) {
    if (message.conversationId === current) bubble(message.id, message.role, message.content);
  });

  function finishStream() {
    streaming = null;
    $('stop').disabled = true;
    $('send').disabled = false;
  }

  function setCurrent(id) {
    current = id;
    history.replaceState(null, '', id ? '#c=' + encodeURIComponent(id) : location.pathname);
    renderList(lastList);
  }

  function bubble(id, role, text) {
    var box = $('messages');
    var node = box.querySelector('[data-id="' + CSS.escape(String(id)) + '"]');
    if (!node) {
      node = el('div', 'msg ' + (role === 'user' ? 'admin' : 'ai'));
      node.dataset.id = id;
      node.append(el('span', 'who', role === 'user' ? 'You' : 'Assistant'));
      node.append(el('span', 'text'));
      box.append(node);
    }
    node.querySelector('.text').textContent = shown(text);
    box.scrollTop = box.scrollHeight;
  }

  function render(conversation) {
    $('title').textContent = shown(conversation.title);
    $('messages').replaceChildren();
    conversation.messages.forEach(function (message) { bubble(message.id, message.role, message.content); });
  }

  function openConversation(id) {
    api('/api/conversations/' + encodeURIComponent(id)).then(function (result) {
      if (!result.ok) {
        $('error').textContent = errorText(result, 'Could not open the conversation');
        setCurrent(null);
        return;
      }
      render(result.body);
    });
  }

  var lastList = [];
  function loadList() {
    api('/api/conversations').then(function (result) {
      if (result.ok) { lastList = result.body; renderList(lastList); }
    });
  }

  function renderList(list) {
    var ul = $('conversations');
    ul.replaceChildren();
    list.forEach(function (conversation) {
      var item = el('li');
      item.tabIndex = 0;
      item.setAttribute('role', 'option');
      item.setAttribute('aria-selected', String(conversation.id === current));
      item.append(el('div', 'name', conversation.title));
      var last = conversation.messages[conversation.messages.length - 1];
      item.append(el('div', 'preview', last ? last.content : ''));
      var choose = function () {
        if (streaming) return;
        if (current) socket.emit('leave_conversation', current);
        setCurrent(conversation.id);
        socket.emit('join_conversation', conversation.id);
        $('error').textContent = '';
        openConversation(conversation.id);
      };
      item.addEventListener('click', choose);
      item.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); choose(); }
      });
      ul.append(item);
    });
  }

  $('new-chat').addEventListener('click', function () {
    if (streaming) return;
    if (current) socket.emit('leave_conversation', current);
    setCurrent(null);
    $('title').textContent = 'New chat';
    $('messages').replaceChildren();
    $('error').textContent = '';
    $('prompt').focus();
  });

  $('prompt').addEventListener('keydown', function (event) {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      $('composer').requestSubmit();
    }
  });

  $('composer').addEventListener('submit', function (event) {
    event.preventDefault();
    var text = $('prompt').value.trim();
    if (!text) { $('error').textContent = 'Type a message first'; return; }
    if (streaming) return;
    $('error').textContent = '';
    $('prompt').value = '';
    $('send').disabled = true;
    bubble('local-' + Date.now(), 'user', text);
    var payload = { message: text };
    if (current) payload.conversationId = current;
    socket.emit('stream_chat', payload);
  });

  $('stop').addEventListener('click', function () {
    if (streaming) socket.emit('stop_generation', { messageId: streaming });
  });

  loadList();
  if (current) openConversation(current);
})();
