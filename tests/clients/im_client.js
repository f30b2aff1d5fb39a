#!/usr/bin/env node
/*
 * Drive xmeet's IM protocol (PROTOCOL.md section 3) with the official
 * socket.io-client 4.x and print what happened as one JSON line, for
 * tests/test_im_socketio.py, which checks every value.
 *
 * usage: node im_client.js URL SCENARIO [SPEC]
 *
 *   URL       http://127.0.0.1:PORT
 *   SCENARIO  conversation  ann (two devices), bob and cid (offline at
 *                           first) hold the scripted conversation of the
 *                           tests; the report holds every ack by step
 *                           name and every event each socket received
 *             cases         eve and fay log in, eve creates conversations
 *                           "c" (fay a member) and "d"; then every case of
 *                           SPEC.cases is emitted twice: with an ack
 *                           callback (the ack is reported) and without
 *                           (the next "error" event is reported)
 *   SPEC      JSON {secret?, cases: [{as, event, payload?}]}; with a
 *             secret, logIn is signed; in payloads the strings "@eve.token",
 *             "@eve.socket", "@c", "@d" and "@sign:USER" stand for eve's
 *             (or fay's) token and socket id, the conversations' ids and
 *             the signature of USER.
 *
 * Every wait is bounded; the exit status is 0 when the scenario ran to
 * its end, 1 on an error, 2 when it timed out.
 */
"use strict";

const crypto = require("crypto");
const { io } = require("socket.io-client");

const [url, scenario, specText] = process.argv.slice(2);
const spec = specText ? JSON.parse(specText) : {};
const WAIT = 5000;

const report = { scenario, ids: {}, events: {}, acks: {} };
const sockets = {};
const tokens = {};
const waiters = [];

function finish(code, error) {
  if (error !== undefined) {
    report.error = String((error && error.stack) || error);
  }
  for (const socket of Object.values(sockets)) {
    socket.disconnect();
  }
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(code);
}

setTimeout(() => finish(2, "scenario timed out"), 25000);

function wake() {
  for (const waiter of waiters.slice()) {
    if (waiter.condition()) {
      waiters.splice(waiters.indexOf(waiter), 1);
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
  }
}

function waitUntil(condition, what) {
  if (condition()) {
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const waiter = { condition, resolve };
    waiter.timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(waiter), 1);
      reject(new Error("no " + what + " within " + WAIT + " ms"));
    }, WAIT);
    waiters.push(waiter);
  });
}

function named(name, event) {
  return report.events[name].filter(([received]) => received === event);
}

function open(name, transports) {
  const events = (report.events[name] = []);
  const socket = io(url, { transports, reconnection: false, forceNew: true, timeout: WAIT });
  socket.onAny((event, ...args) => {
    events.push([event, args.length ? args[0] : null]);
    wake();
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      report.ids[name] = socket.id;
      sockets[name] = socket;
      resolve(socket);
    });
    socket.once("connect_error", reject);
  }).then(() => waitUntil(() => named(name, "connected").length === 1, name + " connected"));
}

async function call(name, event, payload, step) {
  const ack = await sockets[name].timeout(WAIT).emitWithAck(event, payload);
  if (step !== undefined) {
    report.acks[step] = ack;
  }
  return ack;
}

function sign(userId) {
  return crypto.createHmac("sha256", spec.secret).update(userId, "utf8").digest("hex");
}

async function logIn(name, userId, step) {
  const payload = { userId, socketId: sockets[name].id };
  if (spec.secret) {
    payload.signature = sign(userId);
  }
  const ack = await call(name, "logIn", payload, step);
  tokens[name] = ack.sessionToken;
  return ack;
}

async function conversation() {
  await open("ann1", ["websocket"]);
  await open("ann2", ["polling"]);
  await open("bob", ["polling", "websocket"]);
  await logIn("ann1", "ann", "login_ann1");
  await logIn("ann2", "ann", "login_ann2");
  await logIn("bob", "bob", "login_bob");
  await call("bob", "message/direct", {
    sessionToken: tokens.bob, targetIds: ["ann", "cid"], type: "text", textContent: "hi ann and cid",
  }, "dm1");
  await call("ann1", "message/direct", {
    sessionToken: tokens.ann1, targetIds: ["bob"], type: "text", textContent: "hi bob",
  }, "dm2");
  const added = await call("ann1", "conversation/add", {
    sessionToken: tokens.ann1, name: "trio", members: ["bob", "cid"], topic: "plans",
    meta: { color: "blue", tags: [1, 2] },
  }, "add");
  const conversationId = added.body.id;
  await call("ann1", "message/conversation", {
    sessionToken: tokens.ann1, conversationId, ignoreIds: [], type: "text", content: { text: "one" },
  }, "msg1");
  await call("bob", "message/conversation", {
    sessionToken: tokens.bob, conversationId, ignoreIds: ["cid"], type: "text", content: "two",
  }, "msg2");
  await call("bob", "message/conversation", {
    sessionToken: tokens.bob, conversationId, type: "text", content: { text: "three" },
  }, "msg3");
  await call("bob", "conversation/update", {
    sessionToken: tokens.bob, conversationId, set: { topic: "dinner" },
  }, "update_topic");
  await call("bob", "conversation/update", {
    sessionToken: tokens.bob, conversationId, set: { name: "bob's" },
  }, "update_name");
  await open("cid", ["websocket"]);
  await logIn("cid", "cid", "login_cid");
  await waitUntil(() => report.events.cid.length >= 4, "offline messages of cid");
  await call("cid", "logOut", { sessionToken: tokens.cid }, "logout_cid");
  await logIn("cid", "cid", "relogin_cid");
  await call("cid", "conversation/list", { sessionToken: tokens.cid }, "list");
  await call("cid", "conversation/history", { sessionToken: tokens.cid, conversationId }, "history");
  await call("cid", "conversation/history", {
    sessionToken: tokens.cid, conversationId, limit: 2,
  }, "history_page");
  await call("cid", "conversation/history", {
    sessionToken: tokens.cid, conversationId, before: report.acks.msg2.body.id, limit: 2,
  }, "history_before");
  await call("cid", "conversation/leave", { sessionToken: tokens.cid, conversationId }, "leave");
  await call("cid", "conversation/join", { sessionToken: tokens.cid, conversationId }, "join");
  await call("bob", "conversation/get", { sessionToken: tokens.bob, conversationId }, "get");
  await call("ann2", "logOut", { sessionToken: tokens.ann2 }, "logout_ann2");
  await call("bob", "message/direct", {
    sessionToken: tokens.bob, targetIds: ["ann"], type: "text", textContent: "still there?",
  }, "dm3");
  await call("ann2", "message/direct", {
    sessionToken: tokens.ann2, targetIds: ["bob"], type: "text", textContent: "logged out",
  }, "after_logout");
  sockets.bob.emit("message/direct", {
    sessionToken: tokens.bob, targetIds: ["ann"], type: "text", textContent: "no ack",
  });
  await waitUntil(() => named("ann1", "message/direct").length === 3, "message sent without ack");
  for (const name of ["ann1", "ann2", "bob", "cid"]) {
    await call(name, "conversation/list", {});
  }
}

function substitute(value) {
  if (typeof value === "string" && value.startsWith("@")) {
    const [name, what] = value.slice(1).split(/[.:]/);
    if (value.startsWith("@sign:")) {
      return sign(what);
    }
    if (what === "token") {
      return tokens[name];
    }
    if (what === "socket") {
      return report.ids[name];
    }
    return report.acks["add_" + name].body.id;
  }
  if (Array.isArray(value)) {
    return value.map(substitute);
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substitute(item)]));
  }
  return value;
}

async function cases() {
  await open("eve", ["websocket"]);
  await open("fay", ["polling"]);
  await logIn("eve", "eve", "login_eve");
  await logIn("fay", "fay", "login_fay");
  await call("eve", "conversation/add", { sessionToken: tokens.eve, name: "c", members: ["fay"] }, "add_c");
  await call("eve", "conversation/add", { sessionToken: tokens.eve, name: "d" }, "add_d");
  report.results = [];
  for (const { as, event, payload } of spec.cases) {
    const args = payload === undefined ? [] : [substitute(payload)];
    const ack = await sockets[as].timeout(WAIT).emitWithAck(event, ...args);
    const seen = named(as, "error").length;
    sockets[as].emit(event, ...args);
    await waitUntil(() => named(as, "error").length > seen, "error event for " + event);
    report.results.push({ ack, event: named(as, "error")[seen][1] });
  }
  for (const name of ["c", "d"]) {
    await call("eve", "conversation/get", { sessionToken: tokens.eve, conversationId: substitute("@" + name) }, "final_" + name);
  }
}

const scenarios = { conversation, cases };

scenarios[scenario]().then(() => finish(0), (error) => finish(1, error));
