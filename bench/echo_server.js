// A fast WebSocket echo worker (node + ws), the upstream of every run of router_bench.py.
// Usage: node echo_server.js PORT   (0 = any free port; the bound port is printed)
"use strict";
const http = require("http");
const { WebSocketServer } = require("ws");

const server = http.createServer((req, res) => {
  res.writeHead(req.url === "/health" ? 200 : 404, { "Content-Type": "application/json" });
  res.end('{"status": "ok"}\n');
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(server.address().port);
});
process.on("SIGTERM", () => process.exit(0));
