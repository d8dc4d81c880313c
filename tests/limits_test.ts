/** The queen's limits, in process: followers per job, body size. */
import { equal, match } from "node:assert/strict";
import { JobSpecSchema } from "../protocol/mod.ts";
import { MAX_FOLLOWERS_PER_JOB } from "../queen/hub.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { createApp } from "../queen/server.ts";

Deno.test("a running job refuses followers past its limit with 429", async () => {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 1, log: () => {} });
  const app = createApp(core, { worker: ["w"], api: ["a"] });
  try {
    const { id } = await core.submit(
      JobSpecSchema.parse({ repo: { url: "/tmp/r" }, ref: { branch: "main" } }),
    );
    const stops = Array.from(
      { length: MAX_FOLLOWERS_PER_JOB },
      () => core.hub.follow(id, () => {}),
    );
    const refused = await app.request(`/api/jobs/${id}/events`);
    equal(refused.status, 429);
    match((await refused.json()).error, /too many followers/);
    stops.pop()!();
    const allowed = await app.request(`/api/jobs/${id}/events`);
    equal(allowed.status, 200);
    await allowed.body?.cancel();
    for (const stop of stops) stop();
  } finally {
    core.close();
  }
});

Deno.test("a job spec body over 1 MiB gets 413 even without a length header", async () => {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 1, log: () => {} });
  const app = createApp(core, { worker: ["w"], api: ["a"] });
  try {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`{"x":"${"y".repeat(2 * 1024 * 1024)}"}`));
        controller.close();
      },
    });
    const response = await app.request("/api/jobs", {
      method: "POST",
      headers: { authorization: "Bearer a", "content-type": "application/json" },
      body,
    });
    equal(response.status, 413);
  } finally {
    core.close();
  }
});
