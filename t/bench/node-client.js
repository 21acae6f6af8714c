// node-client.js -- a Node tls load client, the same work as
// lisp-client.lisp, so `make bench` can compare our client with Node's on
// the same server.
//
//   node t/bench/node-client.js MODE [--option value]...
//
// MODE throughput: each of --conns connections streams --size byte chunks
//   (at most --window bytes not yet echoed) and checks every echoed byte.
// MODE handshake: each of --conns connections loops: tls.connect (full
//   handshake, the server verified against --ca-file, no resumption), send
//   1 byte, read its echo, close.
//
// Options as lisp-client.lisp: --host --port --hostname --ca-file --conns
// --size --window --duration --warmup --server-pid.  One secure context is
// made for all connections (tls.createSecureContext), as a Node program
// that cares about speed would.  Prints one "RESULT key=value ..." line.
'use strict';
const fs = require('fs');
const tls = require('tls');

const mode = process.argv[2];
const opt = {
  host: '127.0.0.1', port: null, hostname: 'localhost', 'ca-file': null, conns: '1',
  size: '16384', window: '262144', duration: '2', warmup: '1', 'server-pid': null,
};
const argv = process.argv.slice(3);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, '');
  if (!(name in opt) || i + 1 >= argv.length) {
    console.error(`node-client: bad option ${argv[i]}`);
    process.exit(2);
  }
  opt[name] = argv[i + 1];
}
if (mode !== 'throughput' && mode !== 'handshake') {
  console.error('usage: node node-client.js throughput|handshake --port P --ca-file F ...');
  process.exit(2);
}
const conns = Number(opt.conns), size = Number(opt.size), windowBytes = Number(opt.window);
const duration = Number(opt.duration), warmup = Number(opt.warmup);
const serverPid = opt['server-pid'];

const PERIOD = 251;
const MAXREAD = 1 << 20;
// ref[i] = i mod 251: the pattern from phase k is ref.subarray(k, ...)
const ref = Buffer.alloc(PERIOD + Math.max(MAXREAD, size));
for (let i = 0; i < ref.length; i++) ref[i] = i % PERIOD;

const clockTicks = 100;
function procCpu(pid) {
  const line = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = line.slice(line.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clockTicks;
}
// CPU seconds the whole machine was busy (all but idle and iowait), as tlsload counts them
function hostBusy() {
  const v = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / clockTicks;
}
function selfCpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const context = tls.createSecureContext({ ca: fs.readFileSync(opt['ca-file']) });
let running = true, count = 0, errors = 0, proto = null, cipher = null;
const sockets = new Set();
const seen = new Set();
function noteError(err) {
  if (!running) return;
  errors++;
  const kind = err.code || err.message;
  if (!seen.has(kind)) {
    seen.add(kind);
    console.error(`node-client: ${kind}: ${err.message}`);
  }
}
function noteProto(socket) {
  if (!proto) { proto = socket.getProtocol(); cipher = socket.getCipher().standardName; }
}
function connect() {
  return tls.connect({
    host: opt.host, port: Number(opt.port), servername: opt.hostname,
    secureContext: context,
  });
}

function streamOne(id) {
  const seed = (id * 104729) % PERIOD;
  let sent = 0, received = 0;
  const s = connect();
  sockets.add(s);
  s.setNoDelay(true);
  function fill() {
    while (running && sent - received + size <= windowBytes) {
      const k = (sent + seed) % PERIOD;
      s.write(ref.subarray(k, k + size));
      sent += size;
    }
  }
  s.on('secureConnect', () => { noteProto(s); fill(); });
  s.on('data', (data) => {
    for (let off = 0; off < data.length; off += MAXREAD) {
      const part = data.subarray(off, Math.min(data.length, off + MAXREAD));
      const k = (received + seed) % PERIOD;
      if (!part.equals(ref.subarray(k, k + part.length))) {
        errors++;
        console.error(`node-client: echo mismatch at byte ${received}`);
        s.destroy();
        return;
      }
      received += part.length;
      count += part.length;
    }
    fill();
  });
  s.on('error', noteError);
}

function handshakeLoop() {
  if (!running) return;
  const s = connect();
  sockets.add(s);
  let done = false;
  s.setNoDelay(true);
  s.on('secureConnect', () => s.write(Buffer.from([42])));
  s.on('data', (data) => {
    if (done) return;
    done = true;
    if (data.length === 1 && data[0] === 42) { count++; noteProto(s); } else errors++;
    s.end();
    sockets.delete(s);
    handshakeLoop();
  });
  s.on('error', (err) => {
    noteError(err);
    sockets.delete(s);
    if (!done) { done = true; handshakeLoop(); }
  });
}

for (let i = 0; i < conns; i++) {
  if (mode === 'throughput') streamOne(i); else handshakeLoop();
}

setTimeout(() => {
  const t0 = process.hrtime.bigint(), c0 = count, cpu0 = selfCpu(), h0 = hostBusy();
  const scpu0 = serverPid ? procCpu(serverPid) : null;
  setTimeout(() => {
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const done = count - c0;
    const clientCpu = (selfCpu() - cpu0) / wall;
    const serverCpu = serverPid ? (procCpu(serverPid) - scpu0) / wall : null;
    const hostCpu = (hostBusy() - h0) / wall;
    const otherCpu = hostCpu - clientCpu - (serverCpu || 0);
    running = false;
    const rate = done / wall;
    const common = `RESULT mode=${mode} client=node transport=tls proto=${proto || 'none'} ` +
      `cipher=${cipher || 'none'} conns=${conns} threads=1`;
    const sv = (serverCpu !== null ? ` server_cpu=${serverCpu.toFixed(2)}` : '') +
      ` host_cpu=${hostCpu.toFixed(2)} other_cpu=${otherCpu.toFixed(2)}`;
    let line;
    if (mode === 'throughput') {
      const mibps = rate / 1048576;
      line = `${common} size=${size} duration=${wall.toFixed(2)} bytes=${done} mibps=${mibps.toFixed(1)} ` +
        `errors=${errors} client_cpu=${clientCpu.toFixed(2)}${sv} ` +
        `client_mib_per_cpu_s=${(clientCpu > 0 ? mibps / clientCpu : 0).toFixed(1)}` +
        (serverCpu > 0 ? ` server_mib_per_cpu_s=${(mibps / serverCpu).toFixed(1)}` : '');
    } else {
      line = `${common} duration=${wall.toFixed(2)} handshakes=${done} hps=${rate.toFixed(1)} ` +
        `errors=${errors} client_cpu=${clientCpu.toFixed(2)}${sv} ` +
        `client_us_per_hs=${(rate > 0 ? clientCpu / rate * 1e6 : 0).toFixed(1)}` +
        (serverCpu !== null && rate > 0 ? ` server_us_per_hs=${(serverCpu / rate * 1e6).toFixed(1)}` : '');
    }
    console.log(line);
    for (const s of sockets) s.destroy();
    process.exit(errors ? 3 : 0);
  }, duration * 1000);
}, warmup * 1000);
