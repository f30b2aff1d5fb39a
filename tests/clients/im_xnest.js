#!/usr/bin/env node
/*
 * Join an xnest (an Xmeet room) over Socket.IO with an official client and
 * print what happened as one JSON line, for tests/test_xnest_socketio.py,
 * which plays the WebSocket member of the same room and checks every value.
 *
 * usage: node im_xnest.js URL SCENARIO XNEST PEER
 *
 *   URL       http://127.0.0.1:PORT
 *   SCENARIO  mixed  socket.io-client 4 (polling, then WebSocket): join as
 *                    "sio", send "from sio", wait for PEER's "from ws",
 *                    rename to "sio2", wait for PEER's rename, ask
 *                    "@history:0", send "@to:PEER_ID|psst", leave; then
 *                    join again as "sio3" and disconnect
 *             v2     socket.io-client 2 (EIO=3, polling then WebSocket):
 *                    join as "old", send "hi from v2", wait for it,
 *                    disconnect
 *   XNEST     the xnest id
 *   PEER      the nickname of the WebSocket member already in the room
 *
 * The report holds every ack by step name and every "connected" and
 * "xnest" event in order. Every wait is bounded; the exit status is 0
 * when the scenario ran to its end, 1 on an error, 2 when it timed out.
 */
"use strict";

const [url, scenario, xnest, peer] = process.argv.slice(2);
const WAIT = 5000;

const report = { scenario, acks: {}, events: [] };
const waiters = [];
let socket;

function finish(code, error) {
  if (error !== undefined) {
    report.error = String((error && error.stack) || error);
  }
  if (socket) {
    socket.disconnect();
  }
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(code);
}

setTimeout(() => finish(2, "scenario timed out"), 20000);

function record(event, data) {
  report.events.push([event, data]);
  for (const waiter of waiters.slice()) {
    if (waiter.condition()) {
      waiters.splice(waiters.indexOf(waiter), 1);
      clearTimeout(waiter.timer);
      waiter.done();
    }
  }
}

function waitUntil(condition, what) {
  if (condition()) {
    return Promise.resolve();
  }
  return new Promise((done, fail) => {
    const waiter = { condition, done };
    waiter.timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(waiter), 1);
      fail(new Error("no " + what + " within " + WAIT + " ms"));
    }, WAIT);
    waiters.push(waiter);
  });
}

function frame(type, from, payload) {
  return report.events.some(
    ([event, data]) =>
      event === "xnest" && data.type === type && (from === undefined || data.from === from) &&
      (payload === undefined || data.payload === payload),
  );
}

function call(event, payload, step) {
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error("no ack of " + step)), WAIT);
    socket.emit(event, payload, (ack) => {
      clearTimeout(timer);
      report.acks[step] = ack;
      done(ack);
    });
  });
}

function open(client, options) {
  socket = client(url, { reconnection: false, forceNew: true, timeout: WAIT, ...options });
  socket.on("connected", (data) => record("connected", data));
  socket.on("xnest", (data) => record("xnest", data));
  return new Promise((done, fail) => {
    socket.once("connect", done);
    socket.once("connect_error", fail);
  }).then(() => waitUntil(() => report.events.length > 0, "connected"));
}

async function mixed() {
  await open(require("socket.io-client").io, { transports: ["polling", "websocket"] });
  report.id = socket.id;
  const joined = await call("xnest/join", { xnest, nickname: "sio" }, "join");
  const me = joined.body.self;
  const other = joined.body.members.find((member) => member.nickname === peer).pid;
  await call("xnest/send", { xnest, payload: "from sio" }, "send");
  await waitUntil(() => frame("normal", other, "from ws"), "normal from " + peer);
  await call("xnest/send", { xnest, payload: "@changename:sio2" }, "rename");
  await waitUntil(() => frame("changename", other), "changename of " + peer);
  await call("xnest/send", { xnest, payload: "@history:0" }, "history");
  await waitUntil(() => frame("history", me), "history");
  await call("xnest/send", { xnest, payload: "@to:" + other + "|psst" }, "private");
  await waitUntil(() => frame("private", me), "private");
  await call("xnest/leave", { xnest }, "leave");
  await call("xnest/join", { xnest, nickname: "sio3" }, "rejoin");
}

async function v2() {
  await open(require("socket.io-client-v2"), { transports: ["polling", "websocket"] });
  const joined = await call("xnest/join", { xnest, nickname: "old" }, "join");
  await call("xnest/send", { xnest, payload: "hi from v2" }, "send");
  await waitUntil(() => frame("normal", joined.body.self, "hi from v2"), "own message");
}

const scenarios = { mixed, v2 };

scenarios[scenario]().then(() => finish(0), (error) => finish(1, error));
