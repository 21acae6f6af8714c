// node-echo.js -- Node's tls echo server, the peer `make bench` compares with.
//
//   node t/bench/node-echo.js CERT KEY [PORT]
//
// Listens on 127.0.0.1:PORT (default 0: any free port) with Node's default
// TLS settings, echoes every byte back on the same connection (pipe, so
// back-pressure is honoured), prints "PORT <port> PID <pid>" once it
// listens and runs until it is killed.  Errors other than a client's
// reset or abrupt close are reported on stderr (first of each kind, then at
// every power of ten).
'use strict';
const fs = require('fs');
const tls = require('tls');

const [certFile, keyFile, portArg] = process.argv.slice(2);
if (!certFile || !keyFile) {
  console.error('usage: node node-echo.js CERT KEY [PORT]');
  process.exit(2);
}

const counts = new Map();
function note(kind, err) {
  const n = (counts.get(kind) || 0) + 1;
  counts.set(kind, n);
  if (n === 1 || n === Math.pow(10, Math.round(Math.log10(n)))) {
    console.error(`node-echo: event ${kind} x${n}: ${err && err.message}`);
  }
}
const normal = new Set(['ECONNRESET', 'EPIPE']);

const server = tls.createServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
}, (socket) => {
  socket.on('error', (err) => { if (!normal.has(err.code)) note(err.code || 'error', err); });
  socket.pipe(socket);
});
server.on('tlsClientError', (err) => note('tlsClientError ' + (err.code || ''), err));
server.on('error', (err) => { console.error(`node-echo: server error: ${err.message}`); process.exit(1); });
server.listen({ host: '127.0.0.1', port: Number(portArg || 0), backlog: 4096 }, () => {
  console.log(`PORT ${server.address().port} PID ${process.pid}`);
});
