// Opens N WebSocket connections to URL and holds them idle; prints {"opened": N} once all are
// open (or {"error": ...}), then waits for SIGTERM. Used for memory per idle connection.
// Usage: node idle.js URL N
"use strict";
const WebSocket = require("ws");
const [url, total] = [process.argv[2], Number(process.argv[3] || 1000)];
let opened = 0, failed = 0, next = 0;
const sockets = [];
function openOne() {
  if (next >= total) return;
  next++;
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on("open", () => {
    opened++;
    if (opened === total) console.log(JSON.stringify({ opened }));
    openOne();
  });
  ws.on("error", (e) => { failed++; console.log(JSON.stringify({ error: String(e), opened, failed })); });
  ws.on("close", () => {});
  sockets.push(ws);
}
for (let i = 0; i < 64; i++) openOne();   // 64 handshakes in flight at a time
process.on("SIGTERM", () => process.exit(0));
setInterval(() => {}, 1 << 30);
