/**
 * A real queen refuses a huge chunked body as it arrives: 413, and the queen's peak memory
 * (VmHWM from /proc) stays far below the body's size.
 */
import { equal, ok } from "node:assert/strict";
import { API_TOKEN, startQueen, WORKER_TOKEN } from "./helpers/cluster.ts";

/** A field of `/proc/<pid>/status`, in KiB. */
async function procKib(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

Deno.test("a chunked 256 MiB POST /api/jobs gets 413 without the queen holding it", async () => {
  const queen = await startQueen();
  try {
    const pid = queen.proc.child.pid;
    // Warm the route up, so what is measured is the body and not the first request.
    const warm = await fetch(`${queen.url}/api/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
      body: "{}",
    });
    await warm.body?.cancel();
    const before = await procKib(pid, "VmHWM");
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    const total = 256 * 1024 * 1024;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) return controller.close();
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    let status: number | undefined;
    try {
      const response = await fetch(`${queen.url}/api/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(120_000),
      });
      status = response.status;
      await response.body?.cancel();
    } catch (error) {
      // The queen may close the connection while the client still sends: then no status.
      console.error(`the upload ended without an answer: ${(error as Error).message}`);
    }
    if (status !== undefined) equal(status, 413);
    ok(sent < total, `the whole ${total} bytes were sent: nothing refused them early`);
    const peak = await procKib(pid, "VmHWM");
    // Generous: the limit is 1 MiB; holding the body would add 256 MiB or more.
    ok(peak - before < 64 * 1024, `peak RSS grew by ${peak - before} KiB`);
    const healthy = await fetch(`${queen.url}/healthz`);
    equal(healthy.status, 200);
    await healthy.body?.cancel();
  } finally {
    await queen.proc.stop();
  }
});

Deno.test("a 10 MB worker frame closes the socket unparsed, and the queen carries on", async () => {
  const queen = await startQueen();
  try {
    const pid = queen.proc.child.pid;
    const before = await procKib(pid, "VmHWM");
    const socket = new WebSocket(queen.url.replace(/^http/, "ws") + "/ws/worker", {
      headers: { authorization: `Bearer ${WORKER_TOKEN}` },
    });
    const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
    socket.onerror = () => {};
    socket.onopen = () =>
      socket.send(JSON.stringify({ event: "pong", pad: "x".repeat(10 * 1024 * 1024) }));
    const { code } = await closed;
    equal(code, 1009);
    const peak = await procKib(pid, "VmHWM");
    // Deno receives the frame whole (it has no size option): what must not follow is a parse.
    ok(peak - before < 96 * 1024, `peak RSS grew by ${peak - before} KiB`);
    const healthy = await fetch(`${queen.url}/healthz`);
    equal(healthy.status, 200);
    await healthy.body?.cancel();
  } finally {
    await queen.proc.stop();
  }
});
