/**
 * The queen's HTTP edge, in process: bodies counted in bytes, JSON depth, webhook policy and
 * replays, and the deadline and size limit of sockets (over a real loopback server).
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  decodeWorkerFrame,
  MAX_FRAME_BYTES,
  nestedDeeperThan,
  ProjectSchema,
} from "../protocol/mod.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { MemoryProjectStore } from "../queen/projects/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { createApp } from "../queen/server.ts";
import { HANDSHAKE_CLOSE_CODE, TOO_BIG_CLOSE_CODE } from "../queen/http/limits.ts";
import type { ServerOptions } from "../queen/server.ts";
import { deliveryHeaders, fixture } from "./helpers/webhooks.ts";

const API = "api-token-for-edge-tests";
const WORKER = "worker-token-for-edge-tests";
const SECRET = "webhook-secret-for-edge-tests";

function setup(
  core: Partial<ConstructorParameters<typeof QueenCore>[1]> = {},
  options: ServerOptions = {},
) {
  const store = new MemoryStore();
  const queen = new QueenCore(store, { leaseMs: 60_000, maxAttempts: 1, log: () => {}, ...core });
  const projects = new MemoryProjectStore();
  const app = createApp(queen, { worker: [WORKER], api: [API] }, {
    projects,
    webhookSecret: SECRET,
    ...options,
  });
  return { core: queen, projects, app };
}

/** A body sent in chunks with no length header, `chunks` times `chunk`. */
function chunked(chunk: string, chunks: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(chunk);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent++ < chunks) controller.enqueue(bytes);
      else controller.close();
    },
  });
}

const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

Deno.test("a 2.7 MB multibyte body fails the 1 MiB limit, declared or chunked", async () => {
  const { core, app } = setup();
  try {
    // 900,000 three-byte characters: under 1 Mi UTF-16 units, 2.7 MB as bytes.
    const text = `{"x":"${"€".repeat(900_000)}"}`;
    ok(text.length < 1024 * 1024);
    const headers = { authorization: `Bearer ${API}`, "content-type": "application/json" };
    const declared = await app.request("/api/jobs", { method: "POST", headers, body: text });
    equal(declared.status, 413);
    match((await declared.json()).error, /exceeds 1048576 bytes/);
    const streamed = await app.request("/api/jobs", {
      method: "POST",
      headers,
      body: chunked("€".repeat(10_000), 90),
    });
    equal(streamed.status, 413);
    const project = await app.request("/api/projects", {
      method: "POST",
      headers,
      body: chunked("€".repeat(10_000), 90),
    });
    equal(project.status, 413);
    const hook = await app.request("/hooks/github", {
      method: "POST",
      headers: { "content-type": "application/json", "x-github-event": "push" },
      body: chunked("€".repeat(10_000), 90),
    });
    equal(hook.status, 413);
    equal((await core.store.listJobs({ limit: 10 })).records.length, 0);
  } finally {
    core.close();
  }
});

Deno.test("JSON nested 10,000 deep gets 400, not 500, wherever a body is read", async () => {
  const { core, app } = setup();
  try {
    const headers = { authorization: `Bearer ${API}`, "content-type": "application/json" };
    for (const path of ["/api/jobs", "/api/projects"]) {
      const response = await app.request(path, { method: "POST", headers, body: deep(10_000) });
      equal(response.status, 400, path);
      match((await response.json()).error, /nests deeper than 64 levels/);
    }
    // Inside a string, brackets are text: a deep-looking string is not deep.
    const fine = await app.request("/api/jobs", {
      method: "POST",
      headers,
      body: JSON.stringify({ repo: { url: "/tmp/r" }, ref: { branch: "main" }, note: deep(200) }),
    });
    equal(fine.status, 400);
    match((await fine.json()).error, /^invalid job spec: /);
    const body = `{"repository":${deep(10_000)}}`;
    const hook = await app.request("/hooks/github", {
      method: "POST",
      headers: deliveryHeaders("github", { event: "push", secret: SECRET, body }),
      body,
    });
    equal(hook.status, 400);
  } finally {
    core.close();
  }
});

Deno.test("a job rejected by policy or by its schema reads the same from every way in", async () => {
  const { core, app } = setup({ allowRepo: ["https://git.example/ours/*"] });
  try {
    const headers = { authorization: `Bearer ${API}`, "content-type": "application/json" };
    const refused = await app.request("/api/jobs", {
      method: "POST",
      headers,
      body: JSON.stringify({ repo: { url: "/srv/theirs" }, ref: { branch: "main" } }),
    });
    equal(refused.status, 400);
    match((await refused.json()).error, /is not allowed on this queen \(see its --allow-repo\)/);
    const invalid = await app.request("/api/jobs", {
      method: "POST",
      headers,
      body: JSON.stringify({ repo: {} }),
    });
    equal(invalid.status, 400);
    const answer = await invalid.json();
    match(answer.error, /^invalid job spec: repo\.url: /);
    ok(answer.issues.some((i: { path: string }) => i.path === "repo.url"));
    const badCursor = await app.request("/api/jobs?cursor=nope", { headers });
    equal(badCursor.status, 400);
    match((await badCursor.json()).error, /cursor is not valid/);
  } finally {
    core.close();
  }
});

Deno.test("a signed push for a repository outside --allow-repo gets a 4xx, not 500", async () => {
  const { core, projects, app } = setup({ allowRepo: ["https://git.example/ours/*"] });
  try {
    projects.create(
      ProjectSchema.parse({ name: "octo-org/hello-world", repo: { url: "/srv/elsewhere" } }),
      0,
    );
    const body = JSON.stringify(await fixture("github_push"));
    const response = await app.request("/hooks/github", {
      method: "POST",
      headers: deliveryHeaders("github", { event: "push", secret: SECRET, body }),
      body,
    });
    ok(response.status >= 400 && response.status < 500, `status ${response.status}`);
    match((await response.json()).error, /not allowed on this queen \(see its --allow-repo\)/);
    equal((await core.store.listJobs({ limit: 10 })).records.length, 0);
  } finally {
    core.close();
  }
});

Deno.test("a signed webhook body replayed with a new or no delivery id makes no new job", async () => {
  const { core, projects, app } = setup();
  try {
    projects.create(
      ProjectSchema.parse({ name: "octo-org/hello-world", repo: { url: "/srv/hello" } }),
      0,
    );
    const body = JSON.stringify(await fixture("github_push"));
    const send = (headers: Record<string, string>) =>
      app.request("/hooks/github", { method: "POST", headers, body });
    const first = await send(deliveryHeaders("github", { event: "push", secret: SECRET, body }));
    equal(first.status, 201);
    const { id } = await first.json();
    const again = await send(deliveryHeaders("github", { event: "push", secret: SECRET, body }));
    equal(again.status, 200);
    deepEqual(
      { id: (await again.clone().json()).id, duplicate: (await again.json()).duplicate },
      { id, duplicate: true },
    );
    const bare = deliveryHeaders("github", { event: "push", secret: SECRET, body });
    delete bare["x-github-delivery"];
    const noId = await send(bare);
    equal(noId.status, 200);
    equal((await noId.json()).id, id);
    equal((await core.store.listJobs({ limit: 10 })).records.length, 1);
    // A different body (another push) is a new job.
    const other = JSON.stringify({ ...JSON.parse(body), after: "f".repeat(40) });
    const next = await app.request("/hooks/github", {
      method: "POST",
      headers: deliveryHeaders("github", { event: "push", secret: SECRET, body: other }),
      body: other,
    });
    equal(next.status, 201);
    equal((await core.store.listJobs({ limit: 10 })).records.length, 2);
  } finally {
    core.close();
  }
});

/** The app served on loopback, for real sockets. */
async function serve(options: ServerOptions) {
  const { core, app } = setup({}, options);
  const controller = new AbortController();
  const { promise, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen: (addr) => resolve(addr as Deno.NetAddr),
  }, app.fetch);
  const addr = await promise;
  return {
    core,
    url: `ws://127.0.0.1:${addr.port}`,
    async close() {
      core.close();
      controller.abort();
      await server.finished;
    },
  };
}

/** Opens a socket and resolves with how it closed. */
async function closeOf(socket: WebSocket, onOpen: () => void = () => {}): Promise<CloseEvent> {
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  socket.onopen = onOpen;
  socket.onerror = () => {};
  return await closed;
}

Deno.test("sockets that send nothing after connecting are closed at the handshake deadline", async () => {
  const queen = await serve({ handshakeMs: 300 });
  try {
    const worker = new WebSocket(`${queen.url}/ws/worker`, {
      headers: { authorization: `Bearer ${WORKER}` },
    });
    const workerClosed = await closeOf(worker);
    equal(workerClosed.code, HANDSHAKE_CLOSE_CODE);
    match(workerClosed.reason, /send drone:info within 300 ms/);
    equal(queen.core.drones.size, 0);
    const browser = new WebSocket(`${queen.url}/ws/browser`);
    const browserClosed = await closeOf(browser);
    equal(browserClosed.code, HANDSHAKE_CLOSE_CODE);
  } finally {
    await queen.close();
  }
});

Deno.test("a worker or browser frame past the frame limit closes its socket unparsed", async () => {
  const queen = await serve({});
  try {
    const big = JSON.stringify({ event: "pong", pad: "€".repeat(MAX_FRAME_BYTES / 3 + 10) });
    const worker = new WebSocket(`${queen.url}/ws/worker`, {
      headers: { authorization: `Bearer ${WORKER}` },
    });
    const workerClosed = await closeOf(worker, () => worker.send(big));
    equal(workerClosed.code, TOO_BIG_CLOSE_CODE);
    const browser = new WebSocket(`${queen.url}/ws/browser`);
    const browserClosed = await closeOf(browser, () => browser.send(big));
    equal(browserClosed.code, TOO_BIG_CLOSE_CODE);
  } finally {
    await queen.close();
  }
});

Deno.test("frames nested too deep are refused before parsing, with escapes and strings read right", () => {
  const refused = decodeWorkerFrame(`{"event":"pong","x":${deep(10_000)}}`);
  ok(!refused.ok);
  match(refused.error, /frame nests deeper than 64 levels/);
  ok(!nestedDeeperThan(JSON.stringify({ text: '[[[\\"[[['.repeat(100) })));
  ok(nestedDeeperThan(deep(65)));
  ok(!nestedDeeperThan(deep(64)));
});
