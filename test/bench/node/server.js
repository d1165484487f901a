// The official Socket.IO 4 server with the surface of web3-socket that
// `make bench` drives, so both servers run the same scenarios:
//
//   - Socket.IO at /socket.io/ (default options: websocket and polling,
//     pingInterval 25 s, pingTimeout 20 s, maxHttpBufferSize 1 MB);
//   - auth.token is an HS256 JWT signed with JWT_SECRET, checked with
//     node:crypto; the socket joins "user:<sub>";
//   - REST on the same port, behind X-API-Key (or Authorization: Bearer):
//     POST /api/message {userId, event, data}        -> 202 {id}
//     POST /api/broadcast {event, data[, room]}      -> 202 {id}
//     POST /api/batch {messages: [...]} (1 to 1,000) -> 202 {ids}
//     GET /health                                    -> 200
//
// Environment: PORT, JWT_SECRET, API_KEY (comma-separated keys allowed),
// HOST (default 127.0.0.1). It is an idiomatic server, not a tuned one: no
// clustering, no extra dependencies, nothing slowed down on purpose.
//
// With REDIS_URL set, it is one of several instances sharing that Redis
// through the official @socket.io/redis-streams-adapter (with the `redis`
// client, as the adapter's README shows): an emit on any instance reaches
// the sockets of every instance. REDIS_STREAM_MAXLEN sets the adapter's
// maxLen (its default is 10,000); its other options keep their defaults.
"use strict";

const http = require("node:http");
const crypto = require("node:crypto");
const { Server } = require("socket.io");

const PORT = Number(process.env.PORT || 8082);
const HOST = process.env.HOST || "127.0.0.1";
const SECRET = process.env.JWT_SECRET || "";
const API_KEYS = (process.env.API_KEY || "").split(",").filter(Boolean).map((k) => Buffer.from(k));
const MAX_BODY = 1 << 20;
const MAX_BATCH = 1000;
const REDIS_URL = process.env.REDIS_URL || "";
const REDIS_STREAM_MAXLEN = Number(process.env.REDIS_STREAM_MAXLEN || 0);

if (SECRET.length < 32 || API_KEYS.length === 0) {
  console.error("JWT_SECRET (at least 32 bytes) and API_KEY are required");
  process.exit(2);
}

// verifyToken returns the claims of an HS256 token signed with SECRET, or
// throws an Error whose message is the connect_error the client gets.
function verifyToken(token) {
  if (typeof token !== "string" || token === "") {
    throw new Error("unauthorized: missing token");
  }
  const parts = token.split(".");
  if (parts.length !== 3) {
    throw new Error("unauthorized: invalid token");
  }
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    throw new Error("unauthorized: invalid token");
  }
  if (!header || header.alg !== "HS256" || !claims || typeof claims !== "object") {
    throw new Error("unauthorized: invalid token");
  }
  const want = crypto.createHmac("sha256", SECRET).update(parts[0] + "." + parts[1]).digest();
  const got = Buffer.from(parts[2], "base64url");
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) {
    throw new Error("unauthorized: invalid token");
  }
  const now = Date.now() / 1000;
  if (typeof claims.exp === "number" && now >= claims.exp) {
    throw new Error("unauthorized: token expired");
  }
  if (typeof claims.nbf === "number" && now < claims.nbf) {
    throw new Error("unauthorized: invalid token");
  }
  if (typeof claims.sub !== "string" || claims.sub === "") {
    throw new Error("unauthorized: invalid token");
  }
  return claims;
}

function apiKeyOK(req) {
  let key = req.headers["x-api-key"];
  const auth = req.headers["authorization"];
  if (!key && typeof auth === "string" && auth.startsWith("Bearer ")) {
    key = auth.slice(7);
  }
  if (typeof key !== "string" || key === "") {
    return false;
  }
  const got = Buffer.from(key);
  let ok = false;
  for (const want of API_KEYS) {
    if (got.length === want.length && crypto.timingSafeEqual(got, want)) {
      ok = true;
    }
  }
  return ok;
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function fail(res, status, code, message) {
  send(res, status, { error: { code, message } });
}

// check returns an error message for a message or broadcast body, or "".
function check(m, kind) {
  if (!m || typeof m !== "object" || Array.isArray(m)) return "want a JSON object";
  if (typeof m.event !== "string" || m.event === "") return "event is required";
  if (m.userId !== undefined && m.room !== undefined) return "give userId or room, not both";
  if (kind === "message" && (typeof m.userId !== "string" || m.userId === "")) return "userId is required";
  if (kind === "broadcast" && m.userId !== undefined) return "userId is not accepted here; use /api/message";
  if (m.userId !== undefined && (typeof m.userId !== "string" || m.userId === "")) return "userId must not be empty";
  if (m.room !== undefined && (typeof m.room !== "string" || m.room === "")) return "room must not be empty";
  return "";
}

function deliver(m) {
  if (m.userId !== undefined) {
    io.to("user:" + m.userId).emit(m.event, m.data);
  } else if (m.room !== undefined) {
    io.to(m.room).emit(m.event, m.data);
  } else {
    io.emit(m.event, m.data);
  }
  return crypto.randomUUID();
}

function api(req, res, body) {
  const route = req.method + " " + req.url;
  if (route === "POST /api/message" || route === "POST /api/broadcast") {
    const problem = check(body, route === "POST /api/message" ? "message" : "broadcast");
    if (problem) return fail(res, 400, "invalid_request", problem);
    return send(res, 202, { id: deliver(body) });
  }
  if (route === "POST /api/batch") {
    const msgs = body && body.messages;
    if (!Array.isArray(msgs) || msgs.length === 0) {
      return fail(res, 400, "invalid_request", "messages must hold at least one message");
    }
    if (msgs.length > MAX_BATCH) {
      return fail(res, 400, "invalid_request", `messages holds ${msgs.length} messages; at most ${MAX_BATCH} are accepted`);
    }
    for (let i = 0; i < msgs.length; i++) {
      const problem = check(msgs[i], "any");
      if (problem) return fail(res, 400, "invalid_request", `messages[${i}]: ${problem}`);
    }
    return send(res, 202, { ids: msgs.map(deliver) });
  }
  return fail(res, 404, "not_found", "no such route");
}

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/health") {
    return send(res, 200, { status: "ok" });
  }
  if (!req.url.startsWith("/api/")) {
    return fail(res, 404, "not_found", "no such route");
  }
  if (!apiKeyOK(req)) {
    return fail(res, 401, "unauthorized", "missing or invalid API key");
  }
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      tooLarge = true;
    } else {
      chunks.push(chunk);
    }
  });
  req.on("end", () => {
    if (tooLarge) return fail(res, 413, "payload_too_large", `body over ${MAX_BODY} bytes`);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks, size).toString("utf8"));
    } catch {
      return fail(res, 400, "invalid_json", "body is not JSON");
    }
    api(req, res, body);
  });
});

const io = new Server(httpServer, { cors: { origin: "*" } });
let redisClient = null;

io.use((socket, next) => {
  try {
    socket.data.userId = verifyToken(socket.handshake.auth && socket.handshake.auth.token).sub;
    next();
  } catch (err) {
    next(err);
  }
});

io.on("connection", (socket) => {
  socket.join("user:" + socket.data.userId);
});

async function main() {
  if (REDIS_URL) {
    // Loaded only here, so the one-instance server needs nothing but
    // socket.io.
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-streams-adapter");
    redisClient = createClient({ url: REDIS_URL });
    redisClient.on("error", (err) => console.error("redis:", err.message));
    await redisClient.connect();
    const opts = REDIS_STREAM_MAXLEN > 0 ? { maxLen: REDIS_STREAM_MAXLEN } : {};
    io.adapter(createAdapter(redisClient, opts));
    // The adapter connects its reading client in the background and reads
    // entries added after its first XREAD ("$"); the bench publishes only
    // after every client has connected and a settle pause, long after that.
  }
  httpServer.listen(PORT, HOST, () => {
    console.log(`listening on http://${HOST}:${PORT}`);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

function stop() {
  io.close(() => {
    if (redisClient) redisClient.destroy();
    process.exit(0);
  });
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
