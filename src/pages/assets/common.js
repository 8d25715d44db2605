// Helpers the built-in pages share. User text is only ever set with
// textContent, never as HTML.
'use strict';

// Bidi overrides and isolates (U+202A–202E, U+2066–2069) in someone's text
// would reorder what follows them ("invoice\u202Egnp.exe" shows as
// "invoiceexe.png"): they are shown as U+FFFD instead.
var BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

function shown(text) {
  return String(text).replace(BIDI_CONTROLS, '\uFFFD');
}

function el(tag, className, text) {
  var node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = shown(text);
  return node;
}

/** Someone's text as a text node. */
function textNode(text) {
  return document.createTextNode(shown(text));
}

/** A JSON request; resolves with `{ok, status, body}`, never rejects on HTTP errors. */
function apiRequest(path, options) {
  options = options || {};
  var headers = { 'content-type': 'application/json' };
  if (options.token) headers.authorization = 'Bearer ' + options.token;
  Object.assign(headers, options.headers || {});
  return fetch((options.base || '') + path, {
    method: options.method || 'GET',
    headers: headers,
    credentials: options.credentials || 'same-origin',
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  }).then(function (response) {
    return response.text().then(function (text) {
      var body = null;
      try { body = text ? JSON.parse(text) : null; } catch (err) { body = null; }
      return { ok: response.ok, status: response.status, body: body };
    });
  }, function () {
    return { ok: false, status: 0, body: { message: 'The server cannot be reached' } };
  });
}

function errorText(result, fallback) {
  return (result.body && (result.body.message || result.body.error)) || fallback;
}

function timeOf(iso) {
  var date = new Date(iso);
  return isNaN(date) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
