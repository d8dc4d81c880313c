/**
 * What a queen does while another serves the database: it forwards every request (API,
 * webhooks, dashboard, and the worker and browser WebSockets) to the serving queen, whose address
 * is in the database. So every queen of a cluster accepts everything, a load balancer may send
 * anything anywhere, and one queen at a time schedules (see docs/ARCHITECTURE.md).
 */

import { FORWARDED_HOST } from "../dashboard/session.ts";

/** Where the serving queen is, or undefined while none serves (`fresh`: not from a cache). */
export type LeaderUrl = (fresh?: boolean) => Promise<string | undefined>;

/**
 * How long a request waits for a serving queen (during a takeover) before it is answered 503: a
 * takeover takes about a second, and a worker refused meanwhile would back off for longer.
 */
const TAKEOVER_WAIT_MS = 5_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The serving queen's address, waiting for one until `deadline`. */
async function serving(leader: LeaderUrl, deadline: number, fresh = false) {
  for (;;) {
    const url = await leader(fresh).catch(() => undefined);
    if (url || Date.now() >= deadline) return url;
    fresh = true;
    await sleep(100);
  }
}

/** Headers that describe one hop, not the request. */
const HOP = ["host", "connection", "upgrade", "keep-alive", "transfer-encoding", "te", "trailer"];

function answer(status: number, error: string): Response {
  return Response.json({ error }, { status, headers: { "retry-after": "1" } });
}

/** A request handler forwarding to the serving queen. */
export function forwarder(leader: LeaderUrl, log: (message: string) => void) {
  return async (request: Request): Promise<Response> => {
    const deadline = Date.now() + TAKEOVER_WAIT_MS;
    const target = await serving(leader, deadline);
    if (!target) {
      return answer(503, "no queen serves the database yet (one is taking over): retry shortly");
    }
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    for (const name of HOP) headers.delete(name);
    // fetch sends the serving queen's own Host: the dashboard's same-origin check needs the one
    // the browser used.
    headers.set(FORWARDED_HOST, request.headers.get("host") ?? url.host);
    // fetch would decompress a compressed answer and leave its content-encoding on: ask for none.
    headers.delete("accept-encoding");
    const socket = request.headers.get("upgrade")?.toLowerCase() === "websocket";
    // A request without a body can be sent again: to the queen that took over from one that
    // just died (its address announced a moment later).
    const again = socket || request.method === "GET" || request.method === "HEAD";
    let to = new URL(url.pathname + url.search, target);
    for (;;) {
      if (socket) {
        const joined = await forwardSocket(request, to, new Headers(headers));
        if (joined) return joined;
      } else {
        try {
          const response = await fetch(to, {
            method: request.method,
            headers,
            body: request.body,
            redirect: "manual",
            signal: request.signal,
          });
          const back = new Headers(response.headers);
          for (const name of HOP) back.delete(name);
          return new Response(response.body, { status: response.status, headers: back });
        } catch (error) {
          if (request.signal.aborted || !again || Date.now() >= deadline) {
            log(`forwarding ${request.method} ${url.pathname}: ${(error as Error).message}`);
            return answer(502, "the serving queen could not be reached: retry shortly");
          }
        }
      }
      await sleep(100);
      const next = await serving(leader, deadline, true);
      if (!next || (socket && Date.now() >= deadline)) {
        log(`forwarding ${url.pathname}: the serving queen refused or is unreachable`);
        return answer(502, "the serving queen refused or could not be reached: retry shortly");
      }
      to = new URL(url.pathname + url.search, next);
    }
  };
}

/**
 * Opens the same WebSocket on the serving queen first (so that a refusal there is a refusal
 * here), then joins the two: frames both ways, and a close of either closes the other.
 */
async function forwardSocket(
  request: Request,
  target: URL,
  headers: Headers,
): Promise<Response | undefined> {
  const to = new URL(target);
  to.protocol = to.protocol === "https:" ? "wss:" : "ws:";
  for (const name of [...headers.keys()]) {
    if (name.startsWith("sec-websocket")) headers.delete(name);
  }
  const upstream = new WebSocket(to, { headers: Object.fromEntries(headers) });
  upstream.binaryType = "arraybuffer";
  const early: (string | ArrayBuffer)[] = [];
  upstream.onmessage = (event) => early.push(event.data);
  const opened = await new Promise<boolean>((resolve) => {
    upstream.onopen = () => resolve(true);
    upstream.onerror = () => resolve(false);
    upstream.onclose = () => resolve(false);
  });
  if (!opened) return undefined;
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  socket.binaryType = "arraybuffer";
  const closeBoth = (code: number, reason: string) => {
    // Not every code may be sent (1001, 1005, 1006 may not from a client): those go as 1000, and
    // the worker reconnects on any close.
    const sendable = code === 1000 || (code >= 3000 && code < 5000) ? code : 1000;
    for (const side of [socket, upstream]) {
      if (side.readyState !== WebSocket.OPEN && side.readyState !== WebSocket.CONNECTING) continue;
      try {
        side.close(sendable, reason.slice(0, 100));
      } catch {
        try {
          side.close();
        } catch {
          // Already closing.
        }
      }
    }
  };
  socket.onopen = () => {
    for (const data of early.splice(0)) socket.send(data);
    upstream.onmessage = (event) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(event.data);
    };
  };
  socket.onmessage = (event) => {
    if (upstream.readyState === WebSocket.OPEN) upstream.send(event.data);
  };
  upstream.onclose = (event) => closeBoth(event.code, event.reason);
  upstream.onerror = () => closeBoth(1001, "serving queen gone");
  socket.onclose = (event) => closeBoth(event.code, event.reason);
  socket.onerror = () => closeBoth(1001, "client gone");
  return response;
}
