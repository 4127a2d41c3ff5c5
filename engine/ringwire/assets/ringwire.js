/*
 * ringwire.js: a small WebSocket client for Ringwire servers.
 *
 *   const rw = new Ringwire(Ringwire.url('/'), { reconnect: true });
 *   rw.on('open', () => rw.send('hello'));
 *   rw.on('message', (data) => console.log(data));
 *   rw.on('status', (s) => console.log(s));  // connecting | open | closed | waiting
 *
 * Reconnects after an unexpected close with exponential backoff and jitter
 * (minDelay * factor^attempt, capped at maxDelay); close() stops reconnecting.
 * URL authentication (the only scheme a browser WebSocket can carry):
 *   new Ringwire(Ringwire.authUrl(Ringwire.url('/'), 'user', 'password'))
 * Served by `ringwire serve` at /ringwire.js (turned off with --no-test-page).
 */
(function (global) {
  'use strict';

  var DEFAULTS = {
    reconnect: true,
    minDelay: 500,
    maxDelay: 30000,
    factor: 2,
    maxAttempts: Infinity,
    protocols: undefined,
    binaryType: 'arraybuffer'
  };

  function Ringwire(url, options) {
    if (!(this instanceof Ringwire)) return new Ringwire(url, options);
    this.url = url;
    this.options = {};
    var k;
    for (k in DEFAULTS) this.options[k] = DEFAULTS[k];
    for (k in options || {}) this.options[k] = options[k];
    this.status = 'closed';
    this.attempts = 0;
    this._handlers = {};
    this._ws = null;
    this._timer = null;
    this._stopped = false;
    this.connect();
  }

  /** The ws:// or wss:// URL of `path` on the page's own host. */
  Ringwire.url = function (path) {
    var loc = global.location;
    var scheme = loc && loc.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + (loc ? loc.host : 'localhost') + (path || '/');
  };

  /** `base` with URL authentication: ws://host/sgc/auth/url/USER/PASSWORD. */
  Ringwire.authUrl = function (base, user, password) {
    var m = /^(wss?:\/\/[^\/]+)/.exec(base);
    var origin = m ? m[1] : base.replace(/\/+$/, '');
    return origin + '/sgc/auth/url/' + encodeURIComponent(user) + '/' +
      encodeURIComponent(password);
  };

  /** The delay before reconnect attempt `n` (0-based), in ms. */
  Ringwire.backoff = function (n, o) {
    var d = Math.min(o.maxDelay, o.minDelay * Math.pow(o.factor, n));
    return Math.round(d / 2 + Math.random() * d / 2);
  };

  Ringwire.prototype.on = function (event, fn) {
    (this._handlers[event] = this._handlers[event] || []).push(fn);
    return this;
  };

  Ringwire.prototype.off = function (event, fn) {
    var l = this._handlers[event] || [];
    this._handlers[event] = l.filter(function (f) { return f !== fn; });
    return this;
  };

  Ringwire.prototype._emit = function (event) {
    var args = Array.prototype.slice.call(arguments, 1);
    (this._handlers[event] || []).forEach(function (f) {
      try { f.apply(null, args); } catch (e) { if (global.console) console.error(e); }
    });
  };

  Ringwire.prototype._setStatus = function (s) {
    this.status = s;
    this._emit('status', s);
  };

  Ringwire.prototype.connect = function () {
    var self = this;
    this._stopped = false;
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    this._setStatus('connecting');
    var ws;
    try {
      ws = new WebSocket(this.url, this.options.protocols);
    } catch (e) {
      this._emit('error', e);
      this._schedule();
      return this;
    }
    ws.binaryType = this.options.binaryType;
    this._ws = ws;
    ws.onopen = function () {
      self.attempts = 0;
      self._setStatus('open');
      self._emit('open');
    };
    ws.onmessage = function (ev) { self._emit('message', ev.data, ev); };
    ws.onerror = function (ev) { self._emit('error', ev); };
    ws.onclose = function (ev) {
      self._ws = null;
      self._setStatus('closed');
      self._emit('close', ev.code, ev.reason, ev);
      if (!self._stopped) self._schedule();
    };
    return this;
  };

  Ringwire.prototype._schedule = function () {
    var o = this.options;
    if (!o.reconnect || this._stopped || this.attempts >= o.maxAttempts) return;
    var delay = Ringwire.backoff(this.attempts++, o);
    var self = this;
    this._setStatus('waiting');
    this._emit('reconnecting', delay, this.attempts);
    this._timer = setTimeout(function () { self._timer = null; self.connect(); }, delay);
  };

  /** Send text or binary; false when not open. */
  Ringwire.prototype.send = function (data) {
    if (!this._ws || this._ws.readyState !== 1) return false;
    this._ws.send(data);
    return true;
  };

  /** Close and stop reconnecting. */
  Ringwire.prototype.close = function (code, reason) {
    this._stopped = true;
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    if (this._ws) this._ws.close(code || 1000, reason || '');
    else this._setStatus('closed');
  };

  if (typeof module === 'object' && module.exports) module.exports = Ringwire;
  else global.Ringwire = Ringwire;
})(typeof window !== 'undefined' ? window : this);
