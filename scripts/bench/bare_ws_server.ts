/**
 * The scale measure's baseline: a bare `Deno.serve` WebSocket server doing only what the queen
 * must do for an idle worker: ask it for `drone:info` when it connects, and ping it at the
 * queen's interval. Frames with `"event":"echo"` are sent back (the probe's round trip); the
 * rest is dropped unparsed.
 *
 * `deno run --allow-net scripts/bench/bare_ws_server.ts [--ping-ms 10000]`; prints
 * `listening on http://127.0.0.1:PORT`.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { "ping-ms": { type: "string", default: "10000" } },
});
const sockets = new Set<WebSocket>();
const server = Deno.serve({
  port: 0,
  hostname: "127.0.0.1",
  onListen: ({ hostname, port }) => console.log(`listening on http://${hostname}:${port}`),
}, (request) => {
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  socket.onopen = () => {
    sockets.add(socket);
    socket.send(JSON.stringify({ event: "drone:query-info" }));
  };
  socket.onmessage = (message) => {
    if (typeof message.data === "string" && message.data.startsWith('{"event":"echo"')) {
      socket.send(message.data);
    }
  };
  socket.onclose = () => sockets.delete(socket);
  socket.onerror = () => {};
  return response;
});
setInterval(() => {
  const frame = JSON.stringify({ event: "ping", t: Date.now() });
  for (const socket of sockets) if (socket.readyState === WebSocket.OPEN) socket.send(frame);
}, Number(values["ping-ms"]));
await server.finished;
