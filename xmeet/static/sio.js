/*
 * sio.js: a small Socket.IO client for xmeet's demo page; plain
 * JavaScript, no build step, no dependencies.
 *
 * It speaks Socket.IO protocol v5 over Engine.IO protocol v4 with the
 * WebSocket transport only (no long-polling, so no upgrade), to one
 * namespace:
 *
 *   var client = new XmeetSio.Client();            // this page's /socket.io/
 *   client.on('connect', function () { client.id; });
 *   client.on('connect_error', function (error) { error.message; });
 *   client.on('disconnect', function (reason) { ... });
 *   client.on('message/direct', function (data) { ... });  // server events
 *   client.connect();
 *   client.emit('logOut', {sessionToken: token});           // no ack asked
 *   client.emitWithAck('logIn', {userId: 'alice', socketId: client.id})
 *     .then(function (ack) { ... }, function (error) { ... });
 *   client.disconnect();
 *
 * 'connect', 'connect_error' and 'disconnect' are the client's own events,
 * as in the official socket.io-client (a server cannot emit those names).
 * There is no automatic reconnection: call connect() again (the demo page
 * has a button for it); emitting while disconnected fails at once.
 *
 * Text frames, as the protocols define them (Engine.IO packet type first,
 * then, inside message packets "4", the Socket.IO packet):
 *
 *   0{"sid", "pingInterval", "pingTimeout", "maxPayload", ...}  open (server)
 *   2 ping (server) -> 3 pong (us);  1 close;  6 noop
 *   40[{auth}]            CONNECT, answered by 40{"sid": ...}
 *   41                    DISCONNECT
 *   42["event", ...args]  EVENT;  42<id>[...] EVENT asking for an ack
 *   43<id>[...args]       ACK of our EVENT <id>
 *   44{"message": ...}    CONNECT_ERROR
 *
 * A namespace other than "/" goes after the type: 42/chat,["event"].
 *
 * Binary is not supported, on purpose: the IM protocol is JSON only, so
 * BINARY_EVENT (45...) and BINARY_ACK (46...) packets and binary frames
 * are dropped, and reported to options.onIgnored when given.
 */
(function (global) {
  'use strict';

  var LIFECYCLE = ['connect', 'connect_error', 'disconnect'];

  var SIO = { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4, BINARY_EVENT: 5, BINARY_ACK: 6 };

  function defaultUrl(path) {
    var scheme = global.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + global.location.host + path;
  }

  function utf8Length(text) {
    return new TextEncoder().encode(text).length;
  }

  /**
   * Decode the Socket.IO packet in an Engine.IO message: {type,
   * attachments, nsp, id, data}, or null when it is malformed.
   */
  function decode(text) {
    var type = text.charCodeAt(0) - 48;
    if (!(type >= 0 && type <= 6)) { return null; }
    var i = 1;
    var packet = { type: type, attachments: 0, nsp: '/', id: null, data: undefined };
    if (type === SIO.BINARY_EVENT || type === SIO.BINARY_ACK) {
      var dash = text.indexOf('-', i);
      if (dash < 0) { return null; }
      packet.attachments = parseInt(text.slice(i, dash), 10);
      i = dash + 1;
    }
    if (text.charAt(i) === '/') {
      var comma = text.indexOf(',', i);
      packet.nsp = comma < 0 ? text.slice(i) : text.slice(i, comma);
      i = comma < 0 ? text.length : comma + 1;
    }
    var digits = /^\d+/.exec(text.slice(i));
    if (digits) {
      packet.id = parseInt(digits[0], 10);
      i += digits[0].length;
    }
    if (i < text.length) {
      try {
        packet.data = JSON.parse(text.slice(i));
      } catch (e) {
        return null;
      }
    }
    return packet;
  }

  /**
   * A Socket.IO client of one namespace.
   *
   * options.url: the WebSocket URL of the endpoint, without query
   *   (default: this page's host, path /socket.io/);
   * options.namespace: default '/';
   * options.auth: the CONNECT payload, an object (default none);
   * options.ackTimeout: ms before emitWithAck gives up (default 10000);
   * options.connectTimeout: ms to wait for the namespace (default 10000);
   * options.onIgnored: called with a description of each dropped packet.
   */
  function Client(options) {
    options = options || {};
    this.url = options.url || defaultUrl('/socket.io/');
    this.namespace = options.namespace || '/';
    this.auth = options.auth || null;
    this.ackTimeout = options.ackTimeout || 10000;
    this.connectTimeout = options.connectTimeout || 10000;
    this.onIgnored = options.onIgnored || function () {};
    /** The Socket.IO socket id once connected, else null. */
    this.id = null;
    /** 'disconnected', 'connecting' or 'connected'. */
    this.state = 'disconnected';
    /** The Engine.IO handshake of the current connection. */
    this.engine = null;
    this._handlers = new Map();
    this._ws = null;
    this._acks = new Map();
    this._nextAck = 0;
    this._heartbeat = null;
    this._connectTimer = null;
  }

  Client.prototype.on = function (event, handler) {
    if (!this._handlers.has(event)) { this._handlers.set(event, []); }
    this._handlers.get(event).push(handler);
    return this;
  };

  Client.prototype.off = function (event, handler) {
    var list = this._handlers.get(event) || [];
    this._handlers.set(event, list.filter(function (h) { return h !== handler; }));
    return this;
  };

  /** Call the handlers of event; one that throws does not stop the others. */
  Client.prototype._fire = function (event, args) {
    (this._handlers.get(event) || []).slice().forEach(function (handler) {
      try {
        handler.apply(null, args);
      } catch (error) {
        setTimeout(function () { throw error; });
      }
    });
  };

  Object.defineProperty(Client.prototype, 'connected', {
    get: function () { return this.state === 'connected'; }
  });

  /** Open a new connection, ending the current one if any. */
  Client.prototype.connect = function () {
    this.disconnect();
    var self = this;
    var ws;
    try {
      ws = new WebSocket(this.url + '?EIO=4&transport=websocket');
    } catch (error) {
      this._fire('connect_error', [error]);
      return this;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this.state = 'connecting';
    this._connectTimer = setTimeout(function () {
      if (self._ws === ws) { self._fail(new Error('timed out waiting for the server')); }
    }, this.connectTimeout);
    ws.onmessage = function (event) {
      if (self._ws !== ws) { return; }
      self._resetHeartbeat();
      if (typeof event.data !== 'string') {
        self.onIgnored('a binary frame');
      } else {
        self._onEngine(event.data);
      }
    };
    ws.onclose = function (event) {
      if (self._ws !== ws) { return; }
      if (self.state === 'connected') {
        self._close('transport close', false);
      } else {
        self._fail(new Error('could not connect (WebSocket closed with code ' + event.code + ')'));
      }
    };
    return this;
  };

  /** Leave the namespace and close the connection. */
  Client.prototype.disconnect = function () {
    if (this._ws) {
      if (this.state === 'connected') { this._send(SIO.DISCONNECT, ''); }
      this._close('io client disconnect', true);
    }
    return this;
  };

  /**
   * Emit event with args; no ack is asked for. Returns false (and sends
   * nothing) when not connected or when the packet is larger than the
   * server's maxPayload.
   */
  Client.prototype.emit = function (event) {
    var args = Array.prototype.slice.call(arguments);
    return this.connected && this._send(SIO.EVENT, JSON.stringify(args));
  };

  /**
   * Emit event with args and an ack id: a Promise of the ack's first
   * argument (as socket.io-client's emitWithAck), rejected when not
   * connected, when the packet is too large, on disconnection, or after
   * ackTimeout ms.
   */
  Client.prototype.emitWithAck = function (event) {
    var self = this;
    var args = Array.prototype.slice.call(arguments);
    return new Promise(function (resolve, reject) {
      if (!self.connected) {
        reject(new Error('not connected'));
        return;
      }
      var id = self._nextAck++;
      if (!self._send(SIO.EVENT, id + JSON.stringify(args))) {
        reject(new Error('message larger than the server accepts'));
        return;
      }
      var timer = setTimeout(function () {
        self._acks.delete(id);
        reject(new Error('no answer within ' + self.ackTimeout / 1000 + ' s'));
      }, self.ackTimeout);
      self._acks.set(id, {
        resolve: function (values) { clearTimeout(timer); resolve(values[0]); },
        reject: function (error) { clearTimeout(timer); reject(error); }
      });
    });
  };

  /** Send a Socket.IO packet of type with body (after type and namespace). */
  Client.prototype._send = function (type, body) {
    var nsp = this.namespace === '/' ? '' : this.namespace + ',';
    var text = '4' + type + nsp + body;
    var limit = this.engine && this.engine.maxPayload;
    if (limit && utf8Length(text) > limit) { return false; }
    this._ws.send(text);
    return true;
  };

  /** One Engine.IO packet from the server. */
  Client.prototype._onEngine = function (text) {
    switch (text.charAt(0)) {
      case '0':
        this._onOpen(text.slice(1));
        break;
      case '1':
        this._close('transport close', true);
        break;
      case '2':
        this._ws.send('3' + text.slice(1));
        break;
      case '4':
        this._onPacket(text.slice(1));
        break;
      case '3':
      case '6':
        break;
      default:
        this._close('parse error', true);
    }
  };

  Client.prototype._onOpen = function (json) {
    try {
      this.engine = JSON.parse(json);
    } catch (e) {
      this._close('parse error', true);
      return;
    }
    this._resetHeartbeat();
    this._send(SIO.CONNECT, this.auth ? JSON.stringify(this.auth) : '');
  };

  /** Treat the connection as dead when the server stops pinging. */
  Client.prototype._resetHeartbeat = function () {
    var self = this;
    var ws = this._ws;
    clearTimeout(this._heartbeat);
    if (!this.engine) { return; }
    this._heartbeat = setTimeout(function () {
      if (self._ws === ws) { self._close('ping timeout', true); }
    }, this.engine.pingInterval + this.engine.pingTimeout);
  };

  Client.prototype._onPacket = function (text) {
    var packet = decode(text);
    if (!packet) {
      this._close('parse error', true);
      return;
    }
    if (packet.nsp !== this.namespace) { return; }
    switch (packet.type) {
      case SIO.CONNECT:
        if (this.state !== 'connecting') { return; }
        clearTimeout(this._connectTimer);
        this.id = packet.data && packet.data.sid;
        this.state = 'connected';
        this._fire('connect', []);
        break;
      case SIO.DISCONNECT:
        this._close('io server disconnect', true);
        break;
      case SIO.EVENT:
        this._onEvent(packet);
        break;
      case SIO.ACK:
        var pending = this._acks.get(packet.id);
        if (pending) {
          this._acks.delete(packet.id);
          pending.resolve(Array.isArray(packet.data) ? packet.data : []);
        }
        break;
      case SIO.CONNECT_ERROR:
        var data = packet.data || {};
        var error = new Error(typeof data === 'string' ? data : String(data.message));
        error.data = data.data;
        this._fail(error);
        break;
      default:
        this.onIgnored('a binary packet (' + packet.attachments + ' attachments)');
    }
  };

  Client.prototype._onEvent = function (packet) {
    if (!Array.isArray(packet.data) || typeof packet.data[0] !== 'string' ||
        LIFECYCLE.indexOf(packet.data[0]) >= 0) {
      return;
    }
    var args = packet.data.slice(1);
    if (packet.id !== null) {
      var self = this;
      var id = packet.id;
      var answered = false;
      args.push(function () {
        if (answered || !self.connected) { return; }
        answered = true;
        self._send(SIO.ACK, id + JSON.stringify(Array.prototype.slice.call(arguments)));
      });
    }
    this._fire(packet.data[0], args);
  };

  /** The namespace was never reached: report it and close. */
  Client.prototype._fail = function (error) {
    this._teardown(true);
    this._fire('connect_error', [error]);
  };

  /** End the connection; 'disconnect' fires if the namespace was reached. */
  Client.prototype._close = function (reason, closeSocket) {
    var was = this.state;
    this._teardown(closeSocket);
    if (was === 'connected') { this._fire('disconnect', [reason]); }
  };

  Client.prototype._teardown = function (closeSocket) {
    var ws = this._ws;
    this._ws = null;
    this.state = 'disconnected';
    this.id = null;
    this.engine = null;
    clearTimeout(this._heartbeat);
    clearTimeout(this._connectTimer);
    if (ws && closeSocket) {
      try { ws.close(1000); } catch (e) { /* already closing */ }
    }
    var acks = this._acks;
    this._acks = new Map();
    acks.forEach(function (pending) { pending.reject(new Error('disconnected')); });
  };

  global.XmeetSio = { Client: Client, decode: decode };
})(window);
