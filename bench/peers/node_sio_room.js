// The official Node socket.io 4.x server with the two xnest events of
// PROTOCOL.md section 3 that the benchmark uses: `xnest/join {xnest,
// nickname}` (ack {statusCode: 200, body: {...}}) and `xnest/send {xnest,
// payload}`, which emits `xnest` with the xgate `normal` frame to the whole
// room, sender included.
//
// Usage: node bench/peers/node_sio_room.js PORT

import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2]);
const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });

const sendTime = () => new Date().toISOString().slice(0, 19).replace('T', ' ');

io.on('connection', (socket) => {
  socket.on('xnest/join', async ({ xnest, nickname }, ack) => {
    socket.data.nickname = nickname;
    socket.join(xnest);
    const sockets = await io.in(xnest).fetchSockets();
    const members = sockets.map((member) => ({ pid: member.id, nickname: member.data.nickname }));
    if (typeof ack === 'function') {
      ack({
        statusCode: 200,
        body: { self: socket.id, member_count: members.length, members, history: [] },
      });
    }
  });
  socket.on('xnest/send', ({ xnest, payload }) => {
    io.to(xnest).emit('xnest', {
      from: socket.id, xnest, type: 'normal', payload, send_time: sendTime(),
    });
  });
});

httpServer.listen(port, '127.0.0.1');
