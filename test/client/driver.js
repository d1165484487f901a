#!/usr/bin/env node
// driver.js runs many official socket.io-client instances in one Node process
// for the Go integration suite (test/harness). It reads one JSON command per
// line on stdin and writes one JSON report per line on stdout. It exits when
// stdin closes.
//
// Commands (every command carries a numeric "id" and is answered by exactly
// one {"type":"result","id":…} report):
//
//   {"id":1,"op":"connect","name":"alice","url":"http://127.0.0.1:8081","opts":{…}}
//       opts go to io(url, opts) on top of {forceNew:true, reconnection:false,
//       timeout:5000}; use opts.auth.token, opts.extraHeaders.Authorization,
//       opts.transports and opts.upgrade. Answered as soon as the client is
//       created; the outcome arrives as a connect or connect_error report.
//   {"id":2,"op":"emit","name":"alice","event":"join","args":[{"room":"r"}]}
//       answered once the packet is handed to the client.
//   {"id":3,"op":"emit","name":"alice","event":"join","args":[…],"ack":true,"timeout":5000}
//       answered with {"ok":true,"args":[…ack arguments…]} or
//       {"ok":false,"error":"operation has timed out"} (or the disconnect).
//   {"id":4,"op":"disconnect","name":"alice"}
//   {"id":5,"op":"ping"}
//
// Reports besides results (each names its client):
//   {"type":"connect","name":…,"sid":…,"transport":"polling|websocket","recovered":false}
//   {"type":"upgrade","name":…,"transport":"websocket"}
//   {"type":"connect_error","name":…,"message":…,"data":…}
//   {"type":"event","name":…,"event":…,"args":[…],"offset":…}  (offset: with
//       connection-state recovery, the event's position in the server's log)
//   {"type":"disconnect","name":…,"reason":…,"description":…}
// and {"type":"ready",…} once at start, {"type":"log","message":…} for driver trouble.
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

const started = Date.now();
const clients = new Map();

function report(r) {
  r.t = Date.now() - started;
  process.stdout.write(JSON.stringify(r) + "\n");
}

function describe(v) {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Error) return v.message;
  if (typeof v === "object" && v.description !== undefined) return describe(v.description);
  if (typeof v === "object" && typeof v.message === "string") return v.message;
  try {
    return typeof v === "string" ? v : JSON.stringify(v);
  } catch (_) {
    return String(v);
  }
}

function connect(cmd) {
  const name = cmd.name;
  const existing = clients.get(name);
  if (existing && existing.connected) throw new Error(`client ${name} is already connected`);
  if (existing) existing.close();

  const opts = Object.assign({ forceNew: true, reconnection: false, timeout: 5000 }, cmd.opts || {});
  const socket = io(cmd.url, opts);
  clients.set(name, socket);

  const watchEngine = () => {
    const engine = socket.io.engine;
    if (!engine || engine.__driverWatched) return;
    engine.__driverWatched = true;
    engine.on("upgrade", (transport) => report({ type: "upgrade", name, transport: transport.name }));
  };
  socket.io.on("open", watchEngine);

  socket.on("connect", () => {
    watchEngine();
    const engine = socket.io.engine;
    report({
      type: "connect",
      name,
      sid: socket.id,
      transport: engine && engine.transport ? engine.transport.name : "",
      recovered: Boolean(socket.recovered),
    });
  });
  socket.on("connect_error", (err) => {
    report({ type: "connect_error", name, message: err && err.message, data: err && err.data });
  });
  socket.on("disconnect", (reason, description) => {
    report({ type: "disconnect", name, reason, description: describe(description) });
  });
  socket.onAny((event, ...args) => {
    // With connection-state recovery the server appends each event's offset
    // as its last argument (the client keeps it to send back when it
    // reconnects): reported apart, so that args are what the sender sent.
    let offset;
    if (socket._pid && args.length && typeof args[args.length - 1] === "string") offset = args.pop();
    report({ type: "event", name, event, args, offset });
  });
  return {};
}

function client(name) {
  const socket = clients.get(name);
  if (!socket) throw new Error(`no client named ${name}`);
  return socket;
}

function emit(cmd) {
  const socket = client(cmd.name);
  const args = Array.isArray(cmd.args) ? cmd.args : [];
  if (!cmd.ack) {
    socket.emit(cmd.event, ...args);
    return {};
  }
  return new Promise((resolve) => {
    socket.timeout(cmd.timeout || 5000).emit(cmd.event, ...args, (err, ...ackArgs) => {
      if (err) resolve({ ok: false, error: describe(err) || "ack failed" });
      else resolve({ args: ackArgs });
    });
  });
}

function disconnect(cmd) {
  client(cmd.name).disconnect();
  return {};
}

const ops = {
  connect,
  emit,
  disconnect,
  ping: () => ({}),
};

async function handle(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    report({ type: "log", message: `bad command line: ${err.message}` });
    return;
  }
  try {
    const op = ops[cmd.op];
    if (!op) throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
    const out = await op(cmd);
    report(Object.assign({ type: "result", id: cmd.id, ok: true }, out));
  } catch (err) {
    report({ type: "result", id: cmd.id, ok: false, error: describe(err) });
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (line.trim() !== "") handle(line);
});
rl.on("close", () => {
  for (const socket of clients.values()) socket.close();
  process.exit(0);
});

report({
  type: "ready",
  node: process.version,
  client: require("socket.io-client/package.json").version,
});
