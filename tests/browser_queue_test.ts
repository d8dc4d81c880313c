/** The seed's browser `queue:new`: a browser submits a job over its socket, with the API token. */
import { equal, match } from "node:assert/strict";
import type { QueenToBrowser } from "../protocol/mod.ts";
import { startQueen } from "../queen/mod.ts";

Deno.test("a browser submits a job with queue:new only with the API token", async () => {
  const queen = await startQueen({
    port: 0,
    host: "127.0.0.1",
    data: await Deno.makeTempDir(),
    workerTokens: ["worker-token-for-browser-test"],
    apiTokens: ["api-token-for-browser-test"],
    log: () => {},
  });
  const socket = new WebSocket(queen.url.replace("http", "ws") + "/ws/browser");
  const frames: QueenToBrowser[] = [];
  let arrived = () => {};
  socket.onmessage = (m) => {
    frames.push(JSON.parse(m.data));
    arrived();
  };
  const next = () =>
    new Promise<QueenToBrowser>((resolve) => arrived = () => resolve(frames.at(-1)!));
  try {
    await new Promise((resolve) => socket.onopen = resolve);
    const job = { repo: { url: "/tmp/some-repo" }, ref: { branch: "main" }, labels: ["nobody"] };
    socket.send(JSON.stringify({ event: "queue:new", job }));
    const refused = await next();
    equal(refused.event, "error");
    match(refused.event === "error" ? refused.message : "", /API token/);
    socket.send(JSON.stringify({ event: "queue:new", job, token: "api-token-for-browser-test" }));
    const accepted = await next();
    equal(accepted.event, "queue:accepted");
    const id = accepted.event === "queue:accepted" ? accepted.id : "";
    equal((await queen.core.job(id))?.view.status, "queued");
    socket.send(
      JSON.stringify({ event: "queue:new", job: { repo: { url: "javascript:x" } }, token: "x" }),
    );
    const invalid = await next();
    match(invalid.event === "error" ? invalid.message : "", /repo\.url|ref/);
  } finally {
    socket.close();
    await new Promise((resolve) => socket.onclose = resolve);
    await queen.close();
  }
});
