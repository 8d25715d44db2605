// A small Socket.IO v5 client over WebSocket, written for Switchboard's pages
// (not the official socket.io-client): Engine.IO v4 framing on one WebSocket,
// the default namespace, JSON payloads, acknowledgements, the server's
// heartbeat, reconnection with backoff, and a send buffer so that events
// emitted while disconnected go out after the next connect. No binary
// payloads, no long-polling, no other namespaces.
'use strict';

function sioConnect(baseUrl, options) {
  options = options || {};
  var listeners = {};
  var acks = {};
  var nextAck = 0;
  var buffer = [];
  var ws = null;
  var connected = false;
  var closedByUser = false;
  var attempts = 0;
  var heartbeat = null;
  var reconnectTimer = null;

  function fire(event, args) {
    (listeners[event] || []).slice().forEach(function (fn) {
      try { fn.apply(null, args); } catch (err) { console.error(err); }
    });
  }

  function wsUrl() {
    var url = new URL('/socket.io/', baseUrl || window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '?EIO=4&transport=websocket';
    return url.toString();
  }

  function armHeartbeat(ms) {
    clearTimeout(heartbeat);
    heartbeat = setTimeout(function () { if (ws) ws.close(); }, ms);
  }

  function send(packet) {
    if (ws && ws.readyState === 1) ws.send(packet);
  }

  function open() {
    clearTimeout(reconnectTimer);
    var socket = new WebSocket(wsUrl());
    ws = socket;
    var pingWindow = 45000;
    socket.onmessage = function (message) {
      if (socket !== ws || typeof message.data !== 'string') return;
      var data = message.data;
      var type = data.charAt(0);
      if (type === '0') {
        var handshake = JSON.parse(data.slice(1));
        pingWindow = handshake.pingInterval + handshake.pingTimeout;
        armHeartbeat(pingWindow);
        var auth = typeof options.auth === 'function' ? options.auth() : options.auth;
        send('40' + (auth ? JSON.stringify(auth) : ''));
      } else if (type === '2') {
        armHeartbeat(pingWindow);
        send('3');
      } else if (type === '4') {
        onSocketPacket(data.slice(1));
      } else if (type === '1') {
        socket.close();
      }
    };
    socket.onclose = function () {
      if (socket !== ws) return;
      ws = null;
      clearTimeout(heartbeat);
      var was = connected;
      connected = false;
      if (was) fire('disconnect', []);
      if (!closedByUser) {
        var delay = Math.min(5000, 500 * Math.pow(2, attempts++)) * (0.75 + Math.random() / 2);
        reconnectTimer = setTimeout(open, delay);
      }
    };
  }

  function onSocketPacket(packet) {
    var type = packet.charAt(0);
    var rest = packet.slice(1);
    if (type === '0') {
      connected = true;
      attempts = 0;
      var queued = buffer;
      buffer = [];
      fire('connect', []);
      queued.forEach(function (frame) { send(frame); });
    } else if (type === '4') {
      fire('connect_error', [safeJson(rest)]);
      if (ws) ws.close();
    } else if (type === '1') {
      if (ws) ws.close();
    } else if (type === '2' || type === '3') {
      var bracket = rest.indexOf('[');
      var id = bracket > 0 ? parseInt(rest.slice(0, bracket), 10) : null;
      var args = safeJson(rest.slice(bracket)) || [];
      if (type === '3') {
        var ack = acks[id];
        delete acks[id];
        if (ack) ack.apply(null, args);
        return;
      }
      if (id !== null && !isNaN(id)) {
        args.push(function () {
          send('43' + id + JSON.stringify(Array.prototype.slice.call(arguments)));
        });
      }
      fire(args[0], args.slice(1));
    }
  }

  function safeJson(text) {
    try { return JSON.parse(text); } catch (err) { return null; }
  }

  var client = {
    on: function (event, fn) {
      (listeners[event] = listeners[event] || []).push(fn);
      return client;
    },
    emit: function (event) {
      var args = Array.prototype.slice.call(arguments);
      var ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      var id = '';
      if (ack) {
        id = String(nextAck++);
        acks[id] = ack;
      }
      var frame = '42' + id + JSON.stringify(args);
      if (connected) send(frame); else buffer.push(frame);
      return client;
    },
    get connected() { return connected; },
    close: function () {
      closedByUser = true;
      clearTimeout(reconnectTimer);
      if (ws) ws.close();
    },
  };
  open();
  return client;
}
