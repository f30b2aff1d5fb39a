// Drives xmeet's Socket.IO server with the official socket.io-client, 4.x or
// 2.x (Engine.IO 3), for tests/test_socketio_clients.py.
//
//   node sio_scenarios.js URL VERSION TRANSPORTS SCENARIO
//
// VERSION is 4 or 2; TRANSPORTS is a comma-separated list ("websocket",
// "polling", "polling,websocket"). The script prints one JSON line with what
// it observed and exits 0, or prints the error and exits 1. The Python test
// judges the observations.

"use strict";

const [url, version, transports, scenario] = process.argv.slice(2);
const io = require(version === "2" ? "socket.io-client-v2" : "socket.io-client");

const TIMEOUT_MS = 15000;

function fail(error) {
  console.log(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }));
  process.exit(1);
}

setTimeout(() => fail(`scenario ${scenario} timed out`), TIMEOUT_MS).unref();

function connect(extra, namespace = "") {
  const options = Object.assign(
    { transports: transports.split(","), forceNew: true, reconnectionDelay: 100 },
    extra,
  );
  if (version === "2") {
    options.query = { token: "v2-token" };
  } else {
    options.auth = { token: "v4-token" };
  }
  return io(url + namespace, options);
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

function emitWithAck(socket, ...args) {
  return new Promise((resolve) => socket.emit(...args, (...reply) => resolve(reply)));
}

function transportName(socket) {
  return socket.io.engine.transport.name;
}

async function settledTransport(socket) {
  // With "polling,websocket" the client upgrades once connected.
  if (transports === "polling,websocket" && transportName(socket) !== "websocket") {
    await once(socket.io.engine, "upgrade");
  }
  return transportName(socket);
}

async function basic() {
  const socket = connect();
  const [auth] = await once(socket, "auth");
  const transport = await settledTransport(socket);
  const echoed = once(socket, "message-back");
  socket.emit("message", 1, "two", { three: [true, null] }, Buffer.from([1, 2, 3]));
  const [n, s, o, b] = await echoed;
  const acked = await emitWithAck(socket, "message-with-ack", "x", Buffer.from([9]));
  socket.once("question", (value, ack) => ack(value * 2, "from client"));
  const answer = await emitWithAck(socket, "ask-me", 21);
  const id = socket.id;
  socket.close();
  return {
    id,
    auth,
    transport,
    echoed: [n, s, o, Array.from(b)],
    acked: [acked[0], Array.from(acked[1])],
    answer,
  };
}

async function rooms() {
  const a = connect();
  const b = connect();
  const c = connect();
  await Promise.all([once(a, "auth"), once(b, "auth"), once(c, "auth")]);
  await Promise.all([emitWithAck(a, "join", "room"), emitWithAck(b, "join", "room")]);
  const heard = { a: [], b: [], c: [] };
  a.on("shouted", (text) => heard.a.push(text));
  b.on("shouted", (text) => heard.b.push(text));
  c.on("shouted", (text) => heard.c.push(text));
  const bHeard = once(b, "shouted");
  const [sent] = await emitWithAck(a, "shout", "room", "hello room");
  await bHeard;
  // Round trips on a and c: anything broadcast to them would have arrived.
  await Promise.all([emitWithAck(a, "message-with-ack"), emitWithAck(c, "message-with-ack")]);
  for (const socket of [a, b, c]) socket.close();
  return { sent, heard };
}

async function reconnect() {
  const socket = connect();
  await once(socket, "auth");
  const first = socket.id;
  const reconnected = once(socket, "auth");
  const disconnected = once(socket, "disconnect");
  socket.emit("close-transport");
  const [reason] = await disconnected;
  await reconnected;
  const [echo] = await emitWithAck(socket, "message-with-ack", "after");
  const second = socket.id;
  socket.close();
  return { first, second, reason, echo };
}

async function silent() {
  // Stop answering the server's pings once connected.
  const socket = connect({ reconnection: false });
  await once(socket, "auth");
  await settledTransport(socket);
  const id = socket.id;
  const engine = socket.io.engine;
  if (version === "2") {
    // Engine.IO 3: the client pings and times the server out; stop both, so
    // that the server is the one to notice.
    clearTimeout(engine.pingIntervalTimer);
    clearTimeout(engine.pingTimeoutTimer);
    engine.setPing = () => {};
    engine.removeAllListeners("heartbeat");
  } else {
    // Engine.IO 4: the server pings; stop answering.
    const send = engine._sendPacket.bind(engine);
    engine._sendPacket = (type, ...rest) => {
      if (type !== "pong") send(type, ...rest);
    };
  }
  const [reason] = await once(socket, "disconnect");
  return { id, reason };
}

async function custom() {
  // A namespace other than the main one, with auth (4.x) or query (2.x).
  const socket = connect({}, "/custom");
  const [auth] = await once(socket, "auth");
  const id = socket.id;
  socket.close();
  return { id, auth };
}

const scenarios = { basic, custom, rooms, reconnect, silent };

scenarios[scenario]()
  .then((result) => {
    console.log(JSON.stringify(result));
    process.exit(0);
  })
  .catch(fail);
