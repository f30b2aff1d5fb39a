// Load generator of the xmeet benchmarks: one Node process, raw `ws` sockets.
//
// Usage: node bench/gen.js '<config JSON>'   (bench/run.py builds the config)
//
// It speaks two wire protocols with the same room workload:
//   xgate: ws://HOST:PORT/xgate/websocket/ROOM?nickname=N, a text frame is a
//          chat message, `normal` frames come back (PROTOCOL.md section 1);
//   sio:   Engine.IO v4 + Socket.IO v5 over the websocket transport, written
//          here on raw `ws` (no socket.io-client) so that the generator's own
//          cost stays small: events `xnest/join` (acked) and `xnest/send`,
//          room frames arriving as the event `xnest` (PROTOCOL.md section 3);
//          with `transport: "polling"` the same over HTTP long-polling.
//
// It talks to bench/run.py over stdio: `MARK <name>` lines, each answered by
// one line on stdin once the runner has sampled the server (CPU, RSS), and a
// final `RESULT <json>` line.

import http from 'node:http';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

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

// A room member over one WebSocket. `onChat(payload)` gets the payload of
// every `normal` frame; `connect()` resolves once the member is in its room.
class Member {
  constructor(proto, room, nickname, port) {
    this.proto = proto;
    this.port = port;
    this.room = room;
    this.nickname = nickname;
    this.onChat = null;
    this.ws = null;
    this.ackWaiters = new Map();
    this.nextAck = 0;
  }

  connect() {
    const path = this.proto === 'xgate'
      ? `/xgate/websocket/${encodeURIComponent(this.room)}?nickname=${encodeURIComponent(this.nickname)}`
      : '/socket.io/?EIO=4&transport=websocket';
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${HOST}:${this.port}${path}`, {
        perMessageDeflate: false,
        handshakeTimeout: CONNECT_TIMEOUT_MS,
      });
      this.ws = ws;
      let settled = false;
      const settle = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error); else resolve(this);
      };
      const timer = setTimeout(() => { settle(new Error('timeout')); ws.terminate(); }, CONNECT_TIMEOUT_MS);
      ws.on('error', (error) => settle(error));
      ws.on('close', () => settle(new Error('closed before joining')));
      if (this.proto === 'xgate') {
        ws.on('open', () => settle());
        ws.on('message', (data) => this.onXgate(data));
      } else {
        this.sioJoined = settle;
        ws.on('message', (data) => this.onSio(data.toString()));
      }
    });
  }

  onXgate(data) {
    framesIn++;
    const frame = JSON.parse(data);
    if (frame.type === 'normal' && this.onChat) this.onChat(frame.payload);
  }

  onSio(text) {
    framesIn++;
    switch (text.charCodeAt(0)) {
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
    const kind = text.charCodeAt(1);
    if (kind === 50) { // '2' EVENT
      const [name, frame] = JSON.parse(text.slice(2));
      if (name === 'xnest' && frame.type === 'normal' && this.onChat) this.onChat(frame.payload);
    } else if (kind === 51) { // '3' ACK: 43<id>[...]
      const bracket = text.indexOf('[');
      const waiter = this.ackWaiters.get(Number(text.slice(2, bracket)));
      if (waiter) waiter(JSON.parse(text.slice(bracket))[0]);
    } else if (kind === 48) { // '0' namespace connected: join the room
      this.emitWithAck('xnest/join', { xnest: this.room, nickname: this.nickname }).then((ack) => {
        if (ack && ack.statusCode === 200) this.sioJoined();
        else this.sioJoined(new Error(`xnest/join refused: ${JSON.stringify(ack)}`));
      });
    } else if (kind === 52) { // '4' CONNECT_ERROR
      this.sioJoined(new Error(`namespace refused: ${text}`));
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
    this.ws.send(text);
  }

  say(text) {
    if (this.proto === 'xgate') this.sendRaw(text);
    else this.sendRaw(`42${JSON.stringify(['xnest/send', { xnest: this.room, payload: text }])}`);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  // Resolves when the socket is fully closed (closing handshake done).
  close() {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) { resolve(); return; }
      this.ws.once('close', resolve);
      this.ws.close();
    });
  }

  // Stop reading from the socket: the kernel buffers fill, then the server's.
  stall() {
    this.ws._socket.pause();
  }

  resume() {
    this.ws._socket.resume();
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
let transportErrors = 0;

// One HTTP request on the shared keep-alive agent; resolves to the body of a 200.
function httpText(method, port, path, body) {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : {
      'content-type': 'text/plain;charset=UTF-8', 'content-length': Buffer.byteLength(body),
    };
    const request = http.request({ host: HOST, port, path, method, agent, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => (response.statusCode === 200
        ? resolve(text)
        : reject(new Error(`HTTP ${response.statusCode}`))));
    });
    request.on('error', reject);
    // A long poll is answered within the server's ping interval (25 s).
    request.setTimeout(60000, () => request.destroy(new Error('HTTP timeout')));
    request.end(body);
  });
}

// A Socket.IO member over Engine.IO HTTP long-polling: one GET always
// waiting for packets, one POST at a time carrying the queued ones.
class PollingMember extends Member {
  async connect() {
    const open = (await httpText('GET', this.port, '/socket.io/?EIO=4&transport=polling')).split('\x1e')[0];
    if (open[0] !== '0') throw new Error('no Engine.IO open packet');
    this.path = `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(JSON.parse(open.slice(1)).sid)}`;
    this.outbox = [];
    this.posting = false;
    this.polling = true;
    this.closed = false;
    const joined = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timeout')), CONNECT_TIMEOUT_MS);
      this.sioJoined = (error) => {
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
    if (!this.posting) this.flush();
  }

  async flush() {
    this.posting = true;
    while (this.outbox.length && !this.closed) {
      const body = this.outbox.join('\x1e');
      this.outbox = [];
      try {
        await httpText('POST', this.port, this.path, body);
      } catch {
        this.fail();
      }
    }
    this.posting = false;
  }

  async poll() {
    while (this.polling && !this.closed) {
      let body;
      try {
        body = await httpText('GET', this.port, this.path);
      } catch {
        this.fail();
        return;
      }
      for (const packet of body.split('\x1e')) {
        if (packet === '1') this.closed = true;
        else this.onSio(packet);
      }
    }
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

// Latency samples in milliseconds, bounded so a long run cannot exhaust memory.
class Samples {
  constructor(capacity = 4_000_000) {
    this.values = new Float64Array(capacity);
    this.length = 0;
  }

  add(value) {
    if (this.length < this.values.length) this.values[this.length++] = value;
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

  let measuring = false;
  let running = true;
  let deliveries = 0;
  let sent = 0;
  const latencies = new Samples();
  const padding = 'x'.repeat(Math.max(0, payloadBytes - 32));
  // Payload: "<sender index>|<send time in ms>|padding"; the time comes from
  // this process's monotonic clock, so end-to-end latency needs no clock sync.
  const sendNext = (index) => {
    if (!running) return;
    sent += measuring ? 1 : 0;
    senderList[index].say(`${index}|${performance.now().toFixed(3)}|${padding}`);
  };
  const excluded = new Set(stalledList);
  for (const member of all) {
    if (excluded.has(member)) continue;
    member.onChat = (payload) => {
      const first = payload.indexOf('|');
      const second = payload.indexOf('|', first + 1);
      if (measuring) {
        deliveries++;
        latencies.add(performance.now() - Number(payload.slice(first + 1, second)));
      }
    };
  }
  // The loop closes when the message reaches the sender itself; on a
  // cluster, when it reaches the next member of the room, which sits on
  // another node, so that the senders wait for the slower cross-node path.
  const acrossNodes = config.ports.length > 1 && perRoom < members;
  senderIndices.forEach((memberIndex, index) => {
    const witness = all[acrossNodes ? memberIndex + 1 : memberIndex];
    const record = witness.onChat;
    witness.onChat = (payload) => {
      if (record) record(payload);
      if (Number(payload.slice(0, payload.indexOf('|'))) === index) sendNext(index);
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
