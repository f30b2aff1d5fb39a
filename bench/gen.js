// Load generator of the xmeet benchmarks: one Node process, its own lean
// WebSocket and HTTP clients on node:net (see "How it measures" in README.rst).
//
// Usage: node bench/gen.js '<config JSON>'   (bench/run.py builds the config)
//
// It speaks two wire protocols with the same room workload:
//   xgate: ws://HOST:PORT/xgate/websocket/ROOM?nickname=N, a text frame is a
//          chat message, `normal` frames come back (PROTOCOL.md section 1);
//   sio:   Engine.IO v4 + Socket.IO v5 over the websocket transport, written
//          here (no socket.io-client) so that the generator's own cost stays
//          small: events `xnest/join` (acked) and `xnest/send`,
//          room frames arriving as the event `xnest` (PROTOCOL.md section 3);
//          with `transport: "polling"` the same over HTTP long-polling.
//
// It talks to bench/run.py over stdio: `MARK <name>` lines, each answered by
// one line on stdin once the runner has sampled the server (CPU, RSS), and a
// final `RESULT <json>` line.

import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';

const config = JSON.parse(process.argv[2]);
const HOST = '127.0.0.1';
const CONNECT_TIMEOUT_MS = 30000;

const stdinLines = createInterface({ input: process.stdin });
const waiting = [];
stdinLines.on('line', () => {
  const resolve = waiting.shift();
  if (resolve) resolve();
});

// Tell the runner where we are and wait until it has taken its samples.
function mark(name) {
  return new Promise((resolve) => {
    waiting.push(resolve);
    process.stdout.write(`MARK ${name}\n`);
  });
}

// A cluster's members are spread over its nodes, neighbours on different nodes.
const portOf = (index) => config.ports[index % config.ports.length];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Every frame or packet any member received: joins make traffic too.
let framesIn = 0;

// Wait at least `settle_ms`, then until no frame has arrived for half a
// second (at most a minute): a big room's join announcements (N joins, each
// to every member) must be delivered before the measured traffic starts.
async function quiet() {
  await sleep(config.settle_ms);
  const deadline = performance.now() + 60000;
  for (let seen = -1; seen !== framesIn && performance.now() < deadline;) {
    seen = framesIn;
    await sleep(500);
  }
}

// What the fan-out scenarios count. A benchmark payload starts with the
// marker `~XB` (see `fanout`); a member counts a frame as a delivery when the
// marker is in it, without parsing the frame, and reads the send time that
// follows the marker straight from the bytes.
let measuring = false;
let deliveries = 0;
let latencies = null;
let checkMismatches = 0;
// performance.now() at the read that brought the frames being handled: the
// receive time of every frame of that read (one clock call per read).
let readTime = 0;

const MARKER = '~XB';

// The marker's offset in buf[start, end), or -1. (A loop, not indexOf: that
// would scan past `end`, through the rest of the shared read buffer, for
// every frame without the marker.)
function markerIn(buf, start, end) {
  for (let at = start; at < end - 3; at++) {
    if (buf[at] === 126) return buf[at + 1] === 88 && buf[at + 2] === 66 ? at : -1; // '~XB'
  }
  return -1;
}

// One delivery of the payload whose marker is at `at`: count it and take its
// latency from the send time, "~XB<sender>|<ms>.<fraction>|...".
function delivered(buf, at, end) {
  if (!measuring) return;
  deliveries++;
  let i = at + 3;
  while (i < end && buf[i] !== 124) i++; // '|'
  let whole = 0;
  let c = buf[++i];
  for (; i < end && c >= 48 && c <= 57; c = buf[++i]) whole = whole * 10 + c - 48;
  let fraction = 0;
  let scale = 1;
  if (c === 46) { // '.'
    for (c = buf[++i]; i < end && c >= 48 && c <= 57; c = buf[++i]) {
      fraction = fraction * 10 + c - 48;
      scale *= 10;
    }
  }
  latencies.add(readTime - (whole + fraction / scale));
}

// The WebSocket client (RFC 6455) is written here on node:net rather than
// taken from `ws`: the generator must cost less per delivered frame than the
// fastest server under test. All sockets read into one buffer (`onread`: no
// allocation and no stream machinery per read), frames are handled in place,
// and only a frame cut by the end of a read is copied.
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
const CLOSE_NORMAL = Buffer.from([0x03, 0xe8]); // status 1000
let maskPool = randomBytes(4096);
let maskAt = 0;

// A masked client frame (FIN set) carrying `payload`.
function clientFrame(opcode, payload) {
  const length = payload.length;
  const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + 4 + length);
  frame[0] = 0x80 | opcode;
  if (head === 2) {
    frame[1] = 0x80 | length;
  } else if (head === 4) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  if (maskAt + 4 > maskPool.length) {
    maskPool = randomBytes(4096);
    maskAt = 0;
  }
  maskPool.copy(frame, head, maskAt, maskAt + 4);
  for (let i = 0; i < length; i++) frame[head + 4 + i] = payload[i] ^ maskPool[maskAt + (i & 3)];
  maskAt += 4;
  return frame;
}

// A room member over one WebSocket. `onChat(payload)` gets the payload of
// every `normal` frame (the frame is parsed); with `fast` set, every frame
// carrying a benchmark payload is counted by `delivered` without parsing.
// `connect()` resolves once the member is in its room.
class Member {
  constructor(proto, room, nickname, port) {
    this.proto = proto;
    this.xgate = proto === 'xgate';
    this.port = port;
    this.room = room;
    this.nickname = nickname;
    this.onChat = null;
    this.fast = false;
    this.socket = null;
    this.opened = false;
    this.closing = false;
    this.closed = false;
    this.pending = null;
    this.fragments = null;
    this.joined = null;
    this.accept = '';
    this.ackWaiters = new Map();
    this.nextAck = 0;
  }

  connect() {
    const path = this.xgate
      ? `/xgate/websocket/${encodeURIComponent(this.room)}?nickname=${encodeURIComponent(this.nickname)}`
      : '/socket.io/?EIO=4&transport=websocket';
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error); else resolve(this);
      };
      this.joined = settle;
      const key = randomBytes(16).toString('base64');
      this.accept = createHash('sha1').update(key + WS_GUID).digest('base64');
      const socket = net.connect({
        host: HOST,
        port: this.port,
        onread: { buffer: READ_BUFFER, callback: (length, buffer) => { this.onRead(buffer, length); } },
      });
      this.socket = socket;
      const timer = setTimeout(() => { settle(new Error('timeout')); socket.destroy(); }, CONNECT_TIMEOUT_MS);
      socket.setNoDelay(true);
      socket.on('connect', () => {
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${HOST}:${this.port}\r\nUpgrade: websocket\r\n`
          + `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      socket.on('error', (error) => settle(error));
      socket.on('end', () => { this.closing = true; });
      socket.on('close', () => {
        this.closed = true;
        this.closing = true;
        settle(new Error('closed before joining'));
      });
    });
  }

  fail(message) {
    this.joined(new Error(message));
    this.socket.destroy();
  }

  // `length` new bytes in `buffer` (the shared READ_BUFFER).
  onRead(buffer, length) {
    readTime = performance.now();
    let data = buffer;
    let end = length;
    if (this.pending !== null) {
      data = Buffer.concat([this.pending, buffer.subarray(0, length)]);
      end = data.length;
      this.pending = null;
    }
    let at = 0;
    if (!this.opened) {
      at = this.onHandshake(data, end);
      if (at < 0) return;
    }
    while (end - at >= 2) {
      const second = data[at + 1];
      if (second & 0x80) {
        this.fail('masked frame from the server');
        return;
      }
      let size = second & 0x7f;
      let head = 2;
      if (size === 126) {
        if (end - at < 4) break;
        size = data.readUInt16BE(at + 2);
        head = 4;
      } else if (size === 127) {
        if (end - at < 10) break;
        size = data.readUInt32BE(at + 2) * 2 ** 32 + data.readUInt32BE(at + 6);
        head = 10;
      }
      if (end - at < head + size) break;
      const first = data[at];
      const start = at + head;
      at = start + size;
      this.onFrame(first, data, start, at);
      if (this.closed) return;
    }
    // The shared buffer is overwritten by the next read: keep a copy.
    if (at < end) this.pending = Buffer.from(data.subarray(at, end));
  }

  // The HTTP response to the upgrade; returns where the frames start, or -1.
  onHandshake(data, end) {
    const text = data.toString('latin1', 0, end);
    const headEnd = text.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      this.pending = Buffer.from(data.subarray(0, end));
      return -1;
    }
    const head = text.slice(0, headEnd);
    const status = head.slice(9, 12);
    if (status !== '101') {
      this.fail(`Unexpected server response: ${status}`);
      return -1;
    }
    const accept = /\r\nsec-websocket-accept:[ \t]*([^\r\n]*?)[ \t]*(\r\n|$)/i.exec(head);
    if (!accept || accept[1] !== this.accept) {
      this.fail('bad Sec-WebSocket-Accept');
      return -1;
    }
    this.opened = true;
    if (this.xgate) this.joined();
    return headEnd + 4;
  }

  onFrame(first, data, start, end) {
    const opcode = first & 0x0f;
    if (opcode === 1 || opcode === 2) {
      if (first & 0x80) this.onMessage(data, start, end);
      else this.fragments = [Buffer.from(data.subarray(start, end))];
    } else if (opcode === 0) {
      if (this.fragments === null) {
        this.fail('continuation without a first fragment');
        return;
      }
      this.fragments.push(Buffer.from(data.subarray(start, end)));
      if (first & 0x80) {
        const message = Buffer.concat(this.fragments);
        this.fragments = null;
        this.onMessage(message, 0, message.length);
      }
    } else if (opcode === 9) { // ping
      this.socket.write(clientFrame(10, data.subarray(start, end)));
    } else if (opcode === 8) { // close: answer it (unless we started it) and end
      if (!this.closing) {
        this.closing = true;
        this.socket.write(clientFrame(8, data.subarray(start, Math.min(end, start + 2))));
      }
      this.socket.end();
    }
  }

  onMessage(data, start, end) {
    if (this.xgate) this.onXgate(data, start, end);
    else this.onSio(data, start, end);
  }

  onXgate(data, start, end) {
    framesIn++;
    let mark = -1;
    if (this.fast) {
      mark = markerIn(data, start, end);
      if (mark >= 0) delivered(data, mark, end);
    }
    if (this.onChat === null) return;
    const frame = JSON.parse(data.toString('utf8', start, end));
    this.chat(frame.type === 'normal' ? frame.payload : null, mark);
  }

  // A parsed `normal` frame's payload (or null for another frame) for
  // `onChat`; a fast member also checks here that the marker test agreed.
  chat(payload, mark) {
    if (this.fast && (typeof payload === 'string' && payload.startsWith(MARKER)) !== (mark >= 0)) {
      checkMismatches++;
    }
    if (payload !== null) this.onChat(payload);
  }

  // One Engine.IO packet, data[start, end).
  onSio(data, start, end) {
    framesIn++;
    switch (data[start]) {
      case 50: // '2' Engine.IO ping
        this.sendRaw('3');
        return;
      case 48: // '0' Engine.IO open: connect to the default namespace
        this.sendRaw('40');
        return;
      case 52: // '4' Engine.IO message, Socket.IO packet follows
        break;
      default:
        return;
    }
    const kind = data[start + 1];
    if (kind === 50) { // '2' EVENT
      let mark = -1;
      if (this.fast) {
        mark = markerIn(data, start, end);
        if (mark >= 0) delivered(data, mark, end);
      }
      if (this.onChat === null) return;
      const [name, frame] = JSON.parse(data.toString('utf8', start + 2, end));
      this.chat(name === 'xnest' && frame.type === 'normal' ? frame.payload : null, mark);
      return;
    }
    const text = data.toString('utf8', start, end);
    if (kind === 51) { // '3' ACK: 43<id>[...]
      const bracket = text.indexOf('[');
      const waiter = this.ackWaiters.get(Number(text.slice(2, bracket)));
      if (waiter) waiter(JSON.parse(text.slice(bracket))[0]);
    } else if (kind === 48) { // '0' namespace connected: join the room
      this.emitWithAck('xnest/join', { xnest: this.room, nickname: this.nickname }).then((ack) => {
        if (ack && ack.statusCode === 200) this.joined();
        else this.joined(new Error(`xnest/join refused: ${JSON.stringify(ack)}`));
      });
    } else if (kind === 52) { // '4' CONNECT_ERROR
      this.joined(new Error(`namespace refused: ${text}`));
    }
  }

  emitWithAck(name, data) {
    const id = this.nextAck++;
    return new Promise((resolve) => {
      this.ackWaiters.set(id, (value) => { this.ackWaiters.delete(id); resolve(value); });
      this.sendRaw(`42${id}${JSON.stringify([name, data])}`);
    });
  }

  sendRaw(text) {
    if (!this.closed) this.socket.write(clientFrame(1, Buffer.from(text)));
  }

  say(text) {
    if (this.xgate) this.sendRaw(text);
    else this.sendRaw(`42${JSON.stringify(['xnest/send', { xnest: this.room, payload: text }])}`);
  }

  get isOpen() {
    return this.opened && !this.closing;
  }

  // Resolves when the socket is fully closed (closing handshake done).
  close() {
    return new Promise((resolve) => {
      if (this.closed) { resolve(); return; }
      const timer = setTimeout(() => this.socket.destroy(), CONNECT_TIMEOUT_MS);
      this.socket.once('close', () => { clearTimeout(timer); resolve(); });
      if (!this.closing) {
        this.closing = true;
        this.socket.write(clientFrame(8, CLOSE_NORMAL));
      }
    });
  }

  // Stop reading from the socket: the kernel buffers fill, then the server's.
  stall() {
    this.socket.pause();
  }

  resume() {
    this.socket.resume();
  }
}

let transportErrors = 0;

// The HTTP response at the start of data[0, end): null while incomplete, else
// { status, close, body, start, end }: the body is body[start, end).
// Content-Length and chunked bodies; one response per request.
function parseResponse(data, end) {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0 || headEnd + 4 > end) return null; // (beyond `end`: an older read's bytes)
  const head = data.toString('latin1', 0, headEnd).toLowerCase();
  const status = Number(head.slice(9, 12));
  const close = /\r\nconnection:[ \t]*close/.test(head);
  const length = /\r\ncontent-length:[ \t]*(\d+)/.exec(head);
  let at = headEnd + 4;
  if (length) {
    const stop = at + Number(length[1]);
    return stop > end ? null : { status, close, body: data, start: at, end: stop };
  }
  if (!/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    return { status: 0, close: true, body: data, start: at, end: at };
  }
  const parts = [];
  for (;;) {
    const line = data.indexOf('\r\n', at);
    if (line < 0 || line + 2 > end) return null;
    const size = parseInt(data.toString('latin1', at, line), 16);
    if (size === 0) {
      if (line + 4 > end) return null; // no trailers expected
      const body = Buffer.concat(parts);
      return { status, close, body, start: 0, end: body.length };
    }
    if (line + 2 + size + 2 > end) return null;
    parts.push(data.subarray(line + 2, line + 2 + size));
    at = line + 2 + size + 2;
  }
}

// One HTTP/1.1 keep-alive connection, one request at a time, written on
// node:net for the same reason as the WebSocket client: node:http's client
// cost more per long-poll response than the fastest server under test.
// `callback(error, body, start, end)` runs while the body is in the shared
// read buffer: it must use it (or copy it) before it returns.
class HttpLink {
  constructor(port) {
    this.port = port;
    this.socket = null;
    this.pending = null;
    this.callback = null;
  }

  request(method, path, body, callback) {
    this.callback = callback;
    if (this.socket === null) this.open();
    this.socket.write(body === undefined
      ? `${method} ${path} HTTP/1.1\r\nHost: ${HOST}:${this.port}\r\n\r\n`
      : `${method} ${path} HTTP/1.1\r\nHost: ${HOST}:${this.port}\r\n`
        + `Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }

  // The same as a promise of a copy of the body.
  fetch(method, path, body) {
    return new Promise((resolve, reject) => {
      this.request(method, path, body, (error, data, start, end) => {
        if (error) reject(error); else resolve(Buffer.from(data.subarray(start, end)));
      });
    });
  }

  open() {
    const socket = net.connect({
      host: HOST,
      port: this.port,
      onread: { buffer: READ_BUFFER, callback: (length, buffer) => { this.onRead(buffer, length); } },
    });
    socket.setNoDelay(true);
    // A long poll is answered within the server's ping interval (25 s).
    socket.setTimeout(60000, () => socket.destroy(new Error('HTTP timeout')));
    const lost = (error) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.pending = null;
      this.finish(error);
    };
    socket.on('error', lost);
    socket.on('close', () => lost(new Error('connection closed')));
    this.socket = socket;
  }

  finish(error, body, start, end) {
    const callback = this.callback;
    this.callback = null;
    if (callback !== null) callback(error, body, start, end);
  }

  onRead(buffer, length) {
    let data = buffer;
    let end = length;
    if (this.pending !== null) {
      data = Buffer.concat([this.pending, buffer.subarray(0, length)]);
      end = data.length;
      this.pending = null;
    }
    const response = parseResponse(data, end);
    if (response === null) {
      this.pending = Buffer.from(data.subarray(0, end));
      return;
    }
    if (response.close) {
      const socket = this.socket;
      this.socket = null;
      socket.end();
    }
    if (response.status !== 200) this.finish(new Error(`HTTP ${response.status}`));
    else this.finish(null, response.body, response.start, response.end);
  }
}

// A Socket.IO member over Engine.IO HTTP long-polling: one GET always
// waiting for packets, one POST at a time carrying the queued ones, each on
// its own keep-alive connection.
class PollingMember extends Member {
  async connect() {
    this.getLink = new HttpLink(this.port);
    this.postLink = new HttpLink(this.port);
    const opening = await this.getLink.fetch('GET', '/socket.io/?EIO=4&transport=polling');
    const open = opening.toString().split('\x1e')[0];
    if (open[0] !== '0') throw new Error('no Engine.IO open packet');
    this.path = `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(JSON.parse(open.slice(1)).sid)}`;
    this.outbox = [];
    this.posting = false;
    this.polling = true;
    this.getting = false;
    this.opened = true;
    this.onPoll = this.onPoll.bind(this);
    this.onPosted = this.onPosted.bind(this);
    const joined = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timeout')), CONNECT_TIMEOUT_MS);
      this.joined = (error) => {
        clearTimeout(timer);
        if (error) reject(error); else resolve(this);
      };
    });
    this.sendRaw('40');
    this.poll();
    return joined;
  }

  sendRaw(text) {
    this.outbox.push(text);
    this.flush();
  }

  flush() {
    if (this.posting || !this.outbox.length || this.closed) return;
    this.posting = true;
    const body = this.outbox.join('\x1e');
    this.outbox = [];
    this.postLink.request('POST', this.path, body, this.onPosted);
  }

  onPosted(error) {
    this.posting = false;
    if (error) this.fail();
    else this.flush();
  }

  poll() {
    if (this.getting || !this.polling || this.closed) return;
    this.getting = true;
    this.getLink.request('GET', this.path, undefined, this.onPoll);
  }

  // Packets separated by 0x1e, in body[start, end).
  onPoll(error, body, start, end) {
    this.getting = false;
    if (error) {
      this.fail();
      return;
    }
    readTime = performance.now();
    while (start <= end) {
      let stop = body.indexOf(0x1e, start);
      if (stop < 0 || stop > end) stop = end;
      if (stop - start === 1 && body[start] === 49) this.closed = true; // '1' close
      else if (stop > start) this.onSio(body, start, stop);
      start = stop + 1;
    }
    this.poll();
  }

  fail() {
    if (!this.closed) transportErrors++;
    this.closed = true;
  }

  get isOpen() {
    return !this.closed;
  }

  close() {
    this.polling = false;
    this.sendRaw('1');
    this.closed = true;
    return Promise.resolve();
  }

  stall() {
    this.polling = false;
  }

  resume() {
    this.polling = true;
    this.poll();
  }
}

const newMember = (room, nickname, port) => (config.transport === 'polling'
  ? new PollingMember(config.proto, room, nickname, port)
  : new Member(config.proto, room, nickname, port));

// Run `fn` over `items`, at most `limit` at once; resolves to the settled results.
async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { ok: true, value: await fn(items[index], index) };
      } catch (error) {
        results[index] = { ok: false, error: String(error && error.message) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// Latency samples in milliseconds, bounded so a long run cannot exhaust
// memory: when full, every other sample is dropped and from then on only
// every other one is taken (then every 4th, ...), so the samples stay
// spread evenly over the whole window.
class Samples {
  constructor(capacity = 4_000_000) {
    this.values = new Float64Array(capacity);
    this.length = 0;
    this.stride = 1;
    this.skipped = 0;
  }

  add(value) {
    if (++this.skipped < this.stride) return;
    this.skipped = 0;
    if (this.length === this.values.length) {
      const half = this.length >> 1;
      for (let i = 0; i < half; i++) this.values[i] = this.values[2 * i];
      this.length = half;
      this.stride *= 2;
    }
    this.values[this.length++] = value;
  }

  percentiles(...ps) {
    const sorted = this.values.subarray(0, this.length).sort();
    return ps.map((p) => (sorted.length
      ? round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))], 3)
      : null));
  }
}

const round = (value, digits) => Number(value.toFixed(digits));

function failureSummary(results) {
  const reasons = {};
  for (const result of results) if (!result.ok) reasons[result.error] = (reasons[result.error] || 0) + 1;
  return reasons;
}

// The shared body of `fanout` and `slow`: rooms x members, closed-loop senders.
async function fanout() {
  const { rooms, members, senders, payload_bytes: payloadBytes } = config;
  const stalled = config.stalled || 0;
  const specs = [];
  for (let r = 0; r < rooms; r++) {
    for (let m = 0; m < members; m++) specs.push({ room: `fan-${r}`, nickname: `u${r}-${m}` });
  }
  const connectStart = performance.now();
  const results = await pool(specs, config.connect_concurrency, (spec, index) => (
    newMember(spec.room, spec.nickname, portOf(index)).connect()));
  const connectSeconds = (performance.now() - connectStart) / 1000;
  const failures = results.filter((result) => !result.ok).length;
  if (failures) {
    return { error: 'connect failures', failures, reasons: failureSummary(results) };
  }
  const all = results.map((result) => result.value);
  const perRoom = senders / rooms;
  const senderIndices = all.map((_, index) => index).filter((index) => index % members < perRoom);
  const senderList = senderIndices.map((index) => all[index]);
  // Stall non-senders, from the end of room 0.
  const stalledList = stalled
    ? all.slice(0, members).filter((_, index) => index >= perRoom).slice(-stalled)
    : [];

  let running = true;
  let sent = 0;
  deliveries = 0;
  latencies = new Samples();
  // Payload: "~XB<sender index>|<send time in ms>|" padded with x to
  // `payload_bytes`; the time comes from this process's monotonic clock, so
  // end-to-end latency needs no clock sync.
  const sendNext = (index) => {
    if (!running) return;
    sent += measuring ? 1 : 0;
    const head = `${MARKER}${index}|${performance.now().toFixed(3)}|`;
    senderList[index].say(head.padEnd(payloadBytes, 'x'));
  };
  // Every member but the stalled ones counts deliveries by the marker alone.
  const excluded = new Set(stalledList);
  for (const member of all) member.fast = !excluded.has(member);
  // The loop closes when the message reaches the sender itself; on a
  // cluster, when it reaches the next member of the room, which sits on
  // another node, so that the senders wait for the slower cross-node path.
  // These witnesses parse every frame they get (which also checks the
  // marker test against a full parse: `check_mismatches`).
  const acrossNodes = config.ports.length > 1 && perRoom < members;
  senderIndices.forEach((memberIndex, index) => {
    const witness = all[acrossNodes ? memberIndex + 1 : memberIndex];
    const previous = witness.onChat;
    witness.onChat = (payload) => {
      if (previous) previous(payload);
      if (Number(payload.slice(MARKER.length, payload.indexOf('|'))) === index) sendNext(index);
    };
  });
  await quiet();
  senderList.forEach((_, index) => sendNext(index));
  await sleep(config.warmup_ms);
  await mark('measure_start');
  measuring = true;
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  const series = [];
  let lastCount = 0;
  const ticker = setInterval(() => {
    series.push(deliveries - lastCount);
    lastCount = deliveries;
  }, 1000);
  // With stalled members, the window has two parts: all reading, then one
  // (or more) stalled; each part's rate is reported, so the comparison is
  // made within one run, under the same load from the rest of the machine.
  let stallAt = null;
  if (stalledList.length) {
    await sleep(config.stall_after_ms);
    stallAt = { deliveries, at: performance.now() };
    for (const member of stalledList) member.stall();
    await mark('stall');
    await sleep(config.measure_ms - config.stall_after_ms);
  } else {
    await sleep(config.measure_ms);
  }
  clearInterval(ticker);
  measuring = false;
  const end = performance.now();
  const seconds = (end - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  await mark('measure_end');
  running = false;
  const stallFigures = {};
  if (stallAt) {
    const before = stallAt.deliveries / ((stallAt.at - start) / 1000);
    const after = (deliveries - stallAt.deliveries) / ((end - stallAt.at) / 1000);
    // Did the server drop the stalled members? Read again to find out.
    for (const member of stalledList) member.resume();
    await sleep(1000);
    Object.assign(stallFigures, {
      others_per_s_before_stall: Math.round(before),
      others_per_s_after_stall: Math.round(after),
      after_over_before: round(after / before, 3),
      stalled_dropped_by_server: stalledList.filter((member) => !member.isOpen).length,
    });
  }
  const [p50, p99] = latencies.percentiles(50, 99);
  return {
    connections: all.length,
    connect_seconds: round(connectSeconds, 3),
    deliveries,
    deliveries_per_s: Math.round(deliveries / seconds),
    messages_per_s: Math.round(sent / seconds),
    // Deliveries per message sent, over members per room: 1.0 when every
    // member got every message (window edges shift it by a few percent).
    delivery_ratio: sent ? round(deliveries / (sent * (members - stalledList.length)), 3) : null,
    latency_ms_p50: p50,
    latency_ms_p99: p99,
    stalled: stalledList.length,
    ...stallFigures,
    transport_errors: transportErrors,
    check_mismatches: checkMismatches,
    deliveries_per_s_series: series,
    gen_cpu_self_pct: round(((cpu.user + cpu.system) / 1e4) / seconds, 1),
  };
}

async function hold() {
  const { connections, room_size: roomSize } = config;
  const specs = Array.from({ length: connections }, (_, index) => ({
    room: `hold-${Math.floor(index / roomSize)}`, nickname: `h${index}`,
  }));
  await mark('measure_start');
  const start = performance.now();
  const results = await pool(specs, config.connect_concurrency, (spec, index) => (
    newMember(spec.room, spec.nickname, portOf(index)).connect()));
  const seconds = (performance.now() - start) / 1000;
  const held = results.filter((result) => result.ok).map((result) => result.value);
  await sleep(config.settle_ms);
  await mark('held');
  await sleep(config.hold_ms);
  const open = held.filter((member) => member.isOpen).length;
  await mark('measure_end');
  return {
    connections,
    connected: held.length,
    failures: connections - held.length,
    failure_reasons: failureSummary(results),
    still_open: open,
    connect_seconds: round(seconds, 3),
    connects_per_s: Math.round(held.length / seconds),
  };
}

async function churn() {
  let measuring = false;
  let running = true;
  let sessions = 0;
  let failures = 0;
  const reasons = {};
  const latencies = new Samples();
  const session = async (loop, iteration) => {
    const begin = performance.now();
    const member = newMember(`churn-${loop}`, `c${loop}-${iteration % 1000}`, portOf(loop + iteration));
    await member.connect();
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('echo timeout')), CONNECT_TIMEOUT_MS);
      member.onChat = () => { clearTimeout(timer); resolve(); };
      member.say(`${loop}|${begin.toFixed(3)}|churn`);
    });
    await member.close();
    if (measuring) {
      sessions++;
      latencies.add(performance.now() - begin);
    }
  };
  const loop = async (index) => {
    for (let iteration = 0; running; iteration++) {
      try {
        await session(index, iteration);
      } catch (error) {
        if (measuring) {
          failures++;
          reasons[error.message] = (reasons[error.message] || 0) + 1;
        }
      }
    }
  };
  const loops = Array.from({ length: config.concurrency }, (_, index) => loop(index));
  await sleep(config.warmup_ms);
  await mark('measure_start');
  measuring = true;
  const start = performance.now();
  await sleep(config.measure_ms);
  measuring = false;
  const seconds = (performance.now() - start) / 1000;
  await mark('measure_end');
  running = false;
  await Promise.race([Promise.all(loops), sleep(5000)]);
  const [p50, p99] = latencies.percentiles(50, 99);
  return {
    concurrency: config.concurrency,
    sessions,
    sessions_per_s: Math.round(sessions / seconds),
    failures,
    failure_reasons: reasons,
    session_ms_p50: p50,
    session_ms_p99: p99,
  };
}

const scenarios = { fanout, slow: fanout, hold, churn };

async function main() {
  let result;
  try {
    result = await scenarios[config.kind]();
  } catch (error) {
    result = { error: String(error && error.stack) };
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}

main();
