// Listener side of examples/stream_bench.rs: N sockets listen to one
// conversation while a sender streams a mock reply of WORDS time-stamped words,
// one every DELAY_MS. Prints one JSON line of measurements; not a test.
import { io } from 'socket.io-client';
import { performance } from 'node:perf_hooks';

const url = process.env.SWITCHBOARD_URL;
const listeners = Number(process.env.LISTENERS ?? 20);
const words = Number(process.env.WORDS ?? 200);
const delayMs = Number(process.env.DELAY_MS ?? 5);

const connect = () =>
  new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
};

const sender = await connect();
const sockets = await Promise.all(Array.from({ length: listeners }, connect));
const created = await fetch(`${url}/api/conversations`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ title: 'bench' }),
}).then((r) => r.json());
for (const socket of [sender, ...sockets]) socket.emit('join_conversation', created.id);
await new Promise((r) => setTimeout(r, 200));

// Baseline: the server's plain round trip, measured on the same connections.
const rtts = [];
for (let i = 0; i < 100; i += 1) {
  const started = performance.now();
  await sender.timeout(5_000).emitWithAck('health');
  rtts.push(performance.now() - started);
}

const perListener = sockets.map((socket) => {
  const record = { chunks: [], bytes: 0 };
  socket.on('stream_chunk', (chunk) => {
    const arrivedMicros = (performance.timeOrigin + performance.now()) * 1000;
    // Each token is the time the mock sent it: the delta's last token waited
    // least, its first the longest.
    const tokens = chunk.delta.trim().split(' ').filter(Boolean).map(Number);
    if (tokens.length > 0) {
      record.chunks.push({ newestMs: (arrivedMicros - tokens.at(-1)) / 1000, oldestMs: (arrivedMicros - tokens[0]) / 1000 });
    }
    record.bytes += Buffer.byteLength(JSON.stringify(chunk));
  });
  record.done = new Promise((resolve) => socket.once('stream_complete', resolve));
  return record;
});
sender.emit('stream_chat', {
  message: `[[mock:words=${words}]] [[mock:delay=${delayMs}]] [[mock:stamp]]`,
  conversationId: created.id,
});
await Promise.all(perListener.map((record) => record.done));

// From the mock sending a chunk's newest token to a listener receiving it:
// provider → server HTTP, coalescing, persistence, fan-out, socket → client.
const newest = perListener.flatMap((record) => record.chunks.map((c) => c.newestMs));
const oldest = perListener.flatMap((record) => record.chunks.map((c) => c.oldestMs));

console.log(
  JSON.stringify({
    listeners,
    words,
    delayMs,
    healthRttMs: median(rtts),
    chunksPerListener: median(perListener.map((r) => r.chunks.length)),
    bytesPerListener: median(perListener.map((r) => r.bytes)),
    newestTokenLatencyMedianMs: median(newest),
    oldestTokenLatencyMedianMs: median(oldest),
    oldestTokenLatencyP95Ms: percentile(oldest, 0.95),
  }),
);
for (const socket of [sender, ...sockets]) socket.close();
process.exit(0);
