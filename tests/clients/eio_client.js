#!/usr/bin/env node
/*
 * Drive xmeet's Engine.IO server with the official Node client and print
 * what happened as one JSON line, for tests/test_engineio_e2e.py.
 *
 * usage: node eio_client.js URL MODE TRANSPORTS [3]
 *
 *   URL         http://127.0.0.1:PORT (the server mounts /engine.io/)
 *   MODE        echo     send a text and a binary message, wait for both
 *                        echoes (after the upgrade, if polling,websocket)
 *               large    the same with 5000-character / 3000-byte messages
 *               silent   stop answering the heartbeat, wait for the close
 *   TRANSPORTS  comma-separated: polling | websocket | polling,websocket
 *   3           use the Engine.IO v3 client of socket.io-client@2 (EIO=3)
 */
"use strict";

const [url, mode, transportList, revision] = process.argv.slice(2);
const transports = transportList.split(",");
const v3 = revision === "3";

function connect() {
  const options = { path: "/engine.io", transports };
  if (v3) {
    const eio = require("socket.io-client-v2/node_modules/engine.io-client");
    return eio(url, options);
  }
  const { Socket } = require("engine.io-client");
  return new Socket(url, options);
}

function describe(data) {
  if (typeof data === "string") {
    return { text: data };
  }
  return { binary: Array.from(new Uint8Array(data.buffer ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data)) };
}

const socket = connect();
const report = { revision: v3 ? 3 : 4, transports: [], messages: [], upgraded: false };

function finish(code) {
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(code);
}

setTimeout(() => {
  report.error = "timed out";
  finish(2);
}, 15000);

socket.on("error", (err) => {
  report.error = String(err && err.message ? err.message : err);
});

socket.on("open", () => {
  report.transports.push(socket.transport.name);
  report.sid = socket.id;
  if (mode === "silent") {
    goSilent();
  } else if (transports.length === 1) {
    sendMessages();
  }
});

socket.on("upgrade", (transport) => {
  report.upgraded = true;
  report.transports.push(transport.name);
  if (mode !== "silent") {
    sendMessages();
  }
});

socket.on("message", (data) => {
  report.messages.push(describe(data));
  if (mode !== "silent" && report.messages.length === 2) {
    report.final = socket.transport.name;
    socket.close();
    // let the close packet (a POST when polling) reach the server
    setTimeout(() => finish(0), 250);
  }
});

socket.on("close", (reason) => {
  report.closeReason = reason;
  if (mode === "silent") {
    finish(0);
  }
});

function sendMessages() {
  if (mode === "large") {
    socket.send("é".repeat(5000));
    socket.send(Uint8Array.from({ length: 3000 }, (_, i) => i % 256));
  } else {
    socket.send("héllo 😀");
    socket.send(Uint8Array.from([1, 2, 3, 4]));
  }
}

function goSilent() {
  // Stop the heartbeat from this side: v4 clients answer the server's
  // pings with pongs, v3 clients send pings; drop those packets.
  const heartbeat = v3 ? "ping" : "pong";
  const name = typeof socket._sendPacket === "function" ? "_sendPacket" : "sendPacket";
  const send = socket[name].bind(socket);
  socket[name] = (type, ...rest) => (type === heartbeat ? undefined : send(type, ...rest));
  if (v3) {
    // The v3 client would also give up on its own after the same delay:
    // leave the verdict to the server.
    socket.onHeartbeat = () => {};
  }
}
