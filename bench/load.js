// Load generator for router_bench.py (node + ws): N connections, each sending a message and
// waiting for its echo before the next (closed loop). Prints one JSON line of results.
// Usage: node load.js URL CONNECTIONS SECONDS WARMUP_SECONDS PAYLOAD_BYTES
"use strict";
const WebSocket = require("ws");

const [url, conns, seconds, warmup, size] = [
  process.argv[2], Number(process.argv[3] || 100), Number(process.argv[4] || 5),
  Number(process.argv[5] || 1), Number(process.argv[6] || 64),
];
const payload = JSON.stringify({ event: "bench", data: "x".repeat(Math.max(0, size - 30)) });
const latencies = [];
let count = 0, measuring = false, stopping = false, opened = 0, failed = 0;

function start(ws) {
  let sentAt = 0n;
  const send = () => { sentAt = process.hrtime.bigint(); ws.send(payload); };
  ws.on("message", (data) => {
    if (data.length && data[0] === 0x7b && String(data).includes('"connection_routed"')) return;
    if (measuring) {
      count++;
      latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e3);
    }
    if (!stopping) send();
  });
  send();
}

for (let i = 0; i < conns; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on("open", () => { opened++; if (opened === conns) begin(); start(ws); });
  ws.on("error", () => { failed++; });
}

function begin() {
  setTimeout(() => {
    measuring = true;
    console.log(JSON.stringify({ phase: "measuring" }));
    const t0 = process.hrtime.bigint();
    setTimeout(() => {
      measuring = false; stopping = true;
      const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      latencies.sort((a, b) => a - b);
      const pick = (q) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null;
      console.log(JSON.stringify({ messages: count, seconds: elapsed, rate: count / elapsed,
        p50_us: pick(0.5), p99_us: pick(0.99), failed }));
      process.exit(0);
    }, seconds * 1000);
  }, warmup * 1000);
}
setTimeout(() => { if (opened < conns) { console.log(JSON.stringify({ error: "connect", opened, failed })); process.exit(1); } }, 30000);
