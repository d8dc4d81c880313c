/**
 * The team dashboard's pieces without a browser: find-in-log over logs past its per-request
 * budget, line windows, line times, badges, filters read from a URL, utilisation with an injected
 * clock, and a project's jobs filtered and paged.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { JobSpecSchema, ProjectSchema, SECRET_MASK } from "../protocol/mod.ts";
import { MemoryProjectStore } from "../queen/projects/memory_store.ts";
import { runFormOfProject, withProjectSecrets } from "../queen/dashboard/run_projects.ts";
import type { RecordedEvent } from "../protocol/mod.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { Recorder } from "../queen/recorder.ts";
import { createApp } from "../queen/server.ts";
import { BADGE_COLOURS, badgeSvg } from "../queen/dashboard/badge.ts";
import { utilisation } from "../queen/dashboard/charts.tsx";
import {
  lineTimes,
  lineWindow,
  SEARCH_BYTES,
  SEARCH_MATCHES,
  searchLog,
  WINDOW_LINES,
} from "../queen/dashboard/log_lines.ts";
import type { LogReader } from "../queen/dashboard/log_lines.ts";
import { filteredJobs, readJobQuery } from "../queen/dashboard/project_data.ts";
import type { JobFilter, JobRecord } from "../queen/store.ts";
import { newRecord } from "../scripts/bench/restart.ts";

/** A log held in memory, read the way the store reads it. */
function logOf(text: string): { reader: LogReader; size: number } {
  const bytes = new TextEncoder().encode(text);
  return {
    reader: { readLog: (_id, start, end) => bytes.slice(start, end) },
    size: bytes.length,
  };
}

/** Every match of `query`, following the cursor to the end; also how many calls it took. */
async function searchAll(log: { reader: LogReader; size: number }, query: string) {
  const lines: number[] = [];
  let cursor: string | undefined;
  let calls = 0;
  do {
    const page = await searchLog(log.reader, "j", log.size, query, cursor);
    calls++;
    ok(page.matches.length <= SEARCH_MATCHES);
    lines.push(...page.matches.map((m) => m.line));
    cursor = page.next ?? undefined;
  } while (cursor && calls < 1000);
  return { lines, calls };
}

Deno.test("find-in-log finds lines across chunk boundaries and past the per-request budget", async () => {
  // ~40 MB: more than two requests' budget; a needle every 100,000 lines.
  const rows: string[] = [];
  for (let i = 1; i <= 1_000_000; i++) {
    rows.push(i % 100_000 === 7 ? `x NEEDLE ${i}` : `row ${i} ${"·".repeat(20)}`);
  }
  const log = logOf(rows.join("\n") + "\n");
  ok(log.size > 2 * SEARCH_BYTES, `log of ${log.size} bytes`);
  const first = await searchLog(log.reader, "j", log.size, "needle");
  ok(first.next, "one request does not scan past its budget");
  ok(first.searched <= SEARCH_BYTES);
  const { lines, calls } = await searchAll(log, "needle");
  ok(calls >= 3);
  deepEqual(lines, Array.from({ length: 10 }, (_, k) => k * 100_000 + 7));
});

Deno.test("find-in-log returns at most a page of matches, then the rest without repeats", async () => {
  const rows = Array.from({ length: 1000 }, (_, i) => `line ${i + 1} match`);
  const log = logOf(rows.join("\n")); // the last line has no newline
  const page = await searchLog(log.reader, "j", log.size, "MATCH");
  equal(page.matches.length, SEARCH_MATCHES);
  const { lines } = await searchAll(log, "match");
  deepEqual(lines, Array.from({ length: 1000 }, (_, i) => i + 1));
});

Deno.test("find-in-log compares text without ANSI escapes, and ignores a forged cursor", async () => {
  const log = logOf("ok\n\x1b[31mERR\x1b[0mOR here\nfine\n");
  const found = await searchLog(log.reader, "j", log.size, "error");
  deepEqual(found.matches, [{ line: 2, text: "ERROR here" }]);
  equal(found.next, null);
  const forged = await searchLog(log.reader, "j", log.size, "error", "../../etc");
  deepEqual(forged.matches.map((m) => m.line), [2]);
  const past = await searchLog(log.reader, "j", log.size, "error", "999999999.5");
  deepEqual(past.matches, []);
});

Deno.test("a line window: the end by default, around a line when asked", async () => {
  const rows = Array.from({ length: 5000 }, (_, i) => `row ${i + 1}`);
  const log = logOf(rows.join("\n") + "\n");
  const tail = await lineWindow(log.reader, "j", log.size);
  equal(tail.total, 5000);
  equal(tail.first, 5000 - WINDOW_LINES + 1);
  equal(tail.lines.at(-1), "row 5000");
  equal(tail.lines.length, WINDOW_LINES);
  const around = await lineWindow(log.reader, "j", log.size, 3000);
  ok(around.first <= 3000 && around.first + around.lines.length > 3000);
  equal(around.lines[3000 - around.first], "row 3000");
  // The byte offsets point at the lines' starts.
  const bytes = new TextEncoder().encode(rows.join("\n") + "\n");
  const at = around.starts[3000 - around.first];
  equal(new TextDecoder().decode(bytes.slice(at, at + 8)), "row 3000");
  const start = await lineWindow(log.reader, "j", log.size, 1);
  equal(start.first, 1);
  equal(start.lines[0], "row 1");
  const empty = await lineWindow(logOf("").reader, "j", 0);
  deepEqual(empty.lines, []);
  const unended = logOf("a\nb");
  deepEqual((await lineWindow(unended.reader, "j", unended.size)).lines, ["a", "b"]);
});

Deno.test("each line's time is the time of the event that wrote its first byte", async () => {
  const ev = (n: number, at: number, data: Record<string, unknown>) =>
    ({ n, at, data: { id: "j", attempt: 1, seq: n, ...data } }) as unknown as RecordedEvent;
  const events = [
    ev(1, 1000, { event: "job:cmd:start", num: 0, cmd: "x", screencmd: "make", plugin: "custom" }),
    ev(2, 2000, { event: "job:cmd:stdout", num: 0, text: "one\ntw" }),
    ev(3, 3000, { event: "job:cmd:stdout", num: 0, text: "o\nthree\n" }),
  ];
  // "$ make\n" (7 bytes), "one\n" at 7, "two\n" at 11, "three\n" at 15.
  deepEqual(await lineTimes(events, [0, 7, 11, 15]), [1000, 2000, 2000, 3000]);
});

Deno.test("badges: a colour per result, unknown for anything else, nothing unescaped", () => {
  for (const [result, colour] of Object.entries(BADGE_COLOURS)) {
    const svg = badgeSvg(result);
    ok(svg.includes(`fill="${colour}" data-result="${result}"`), result);
  }
  ok(badgeSvg("passed").includes("#1a7f37"));
  ok(badgeSvg("failed").includes("#c62828"));
  ok(badgeSvg('<script>"').includes('data-result="unknown"'));
  ok(!badgeSvg("x", '<img src=x onerror=1>"').includes("<img"));
});

Deno.test("filters read from a URL: bad values are dropped with a reason", () => {
  const params = new URLSearchParams({
    result: "exploded",
    since: "yesterday",
    until: "2026-11-30",
    author: "  ada  ",
  });
  const { query, problems } = readJobQuery((n) => params.get(n) ?? undefined);
  deepEqual(query, { until: "2026-11-30", author: "ada" });
  equal(problems.length, 2);
});

Deno.test("utilisation over the last hour, with an injected clock", () => {
  const now = Date.parse("2026-11-30T12:00:00Z");
  const iso = (minAgo: number) => new Date(now - minAgo * 60_000).toISOString();
  // One slot busy for the last 30 minutes; another attempt finished two hours ago.
  const shares = utilisation(
    [
      { startedAt: iso(30), finishedAt: null },
      { startedAt: iso(180), finishedAt: iso(120) },
    ],
    1,
    now,
  );
  deepEqual(shares, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
  // Two slots: the same work is half of them.
  deepEqual(utilisation([{ startedAt: iso(5), finishedAt: null }], 2, now).at(-1), 0.5);
});

Deno.test("a project's jobs filtered by author, trigger and drone, and paged by the URL", async () => {
  const records: JobRecord[] = [];
  for (let i = 0; i < 60; i++) {
    const record = newRecord(`j${String(i).padStart(3, "0")}`, {
      repo: { url: "https://git.example/a/b.git" },
      ref: { branch: "main" },
      trigger: {
        type: i % 2 ? "commit" : "manual",
        author: { name: i % 3 ? "Ada" : "Grace" },
        timestamp: new Date(0).toISOString(),
        source: { type: "API", app: "t" },
      },
    }, 1_000_000 + i);
    record.view.attempts = [
      {
        attempt: 1,
        drone: i % 4 ? "d1" : "d2",
        result: null,
        startedAt: null,
        finishedAt: null,
      } as JobRecord["view"]["attempts"][number],
    ];
    records.unshift(record);
  }
  const lister = {
    listJobs(filter: JobFilter) {
      const from = filter.cursor ? Number(filter.cursor) : 0;
      const page = records.slice(from, from + filter.limit);
      return {
        records: page,
        next: from + filter.limit < records.length ? String(from + filter.limit) : null,
      };
    },
  };
  const want = records.filter((r) =>
    r.spec.trigger?.type === "commit" && r.spec.trigger.author?.name === "Ada" &&
    r.view.attempts[0].drone === "d1"
  ).map((r) => r.id);
  const query = { trigger: "commit", author: "ada", drone: "d1" };
  const first = await filteredJobs(lister, undefined, query, 5);
  deepEqual(first.jobs.map((j) => j.id), want.slice(0, 5));
  const second = await filteredJobs(lister, undefined, { ...query, after: first.next! }, 5);
  deepEqual(second.jobs.map((j) => j.id), want.slice(5, 10));
  const all = await filteredJobs(lister, undefined, query, 100);
  deepEqual(all.jobs.map((j) => j.id), want);
  equal(all.next, null);
});

/** A queen's app over a memory store, with a job whose log holds markup. */
async function hostileQueen(options: { private?: boolean } = {}) {
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  const app = createApp(core, {
    worker: ["w"],
    api: ["api-token-0123456789"],
    view: ["view-token-0123456789"],
  }, options);
  const record = await core.submit(JobSpecSchema.parse({
    repo: { url: "https://git.example/o/r.git" },
    ref: { branch: "main" },
  }));
  // Recorded as the queen records a worker's output.
  new Recorder(core.store, core.hub).record(record, {
    event: "job:stdout",
    id: record.id,
    attempt: 1,
    seq: 1,
    text: "<img src=x onerror=alert(1)> here\n",
  }, Date.now());
  return { core, app, id: record.id, [Symbol.dispose]: () => core.close() };
}

Deno.test("markup in a log and in a search is text on the log page", async () => {
  using q = await hostileQueen();
  const page = await q.app.request(`/jobs/${q.id}/log?q=${encodeURIComponent("<img src=x")}`);
  equal(page.status, 200);
  const html = await page.text();
  ok(!html.includes("<img src=x"), "markup from the log or the query reached the page");
  ok(html.includes("&lt;img src=x"));
  match(html, /1 line with/);
  const long = await q.app.request(`/jobs/${q.id}/log/search?q=${"a".repeat(201)}`);
  equal(long.status, 400);
});

Deno.test("a private queen shows no project, log, badge or drone without the token", async () => {
  using q = await hostileQueen({ private: true });
  for (
    const path of [
      "/projects",
      "/projects/git.example%2Fo%2Fr",
      `/jobs/${q.id}/log`,
      "/drones/1",
    ]
  ) {
    const response = await q.app.request(path);
    await response.body?.cancel();
    equal(response.status, 303, path);
    match(response.headers.get("location") ?? "", /^\/login/);
  }
  for (const path of [`/jobs/${q.id}/log/search?q=img`, "/badge/git.example%2Fo%2Fr/main.svg"]) {
    const response = await q.app.request(path);
    await response.body?.cancel();
    equal(response.status, 401, path);
  }
  const viewer = await q.app.request("/badge/git.example%2Fo%2Fr/main.svg", {
    headers: { authorization: "Bearer view-token-0123456789" },
  });
  equal(viewer.status, 200);
  match(await viewer.text(), /data-result="unknown"/);
});

Deno.test("draining or disconnecting a drone needs the API token, not a read-only one", async () => {
  using q = await hostileQueen();
  for (const token of [undefined, "view-token-0123456789", "wrong"]) {
    const response = await q.app.request("/api/drones/1/drain", {
      method: "POST",
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    await response.body?.cancel();
    equal(response.status, 401, String(token));
  }
  const none = await q.app.request("/api/drones/404/drain", {
    method: "POST",
    headers: { authorization: "Bearer api-token-0123456789" },
  });
  equal(none.status, 404);
  await none.body?.cancel();
  // The form route: without a session it refuses (the page says to log in).
  const form = await q.app.request("/drones/1/drain", { method: "POST" });
  await form.body?.cancel();
  equal(form.status, 401);
});

Deno.test("the run form from a project shows its secret-named config masked, and runs with it", async () => {
  const projects = new MemoryProjectStore();
  projects.create(
    ProjectSchema.parse({
      name: "acme/widget",
      repo: { url: "https://git.example/acme/widget.git" },
      branches: {
        "*": {
          plugins: ["env", "custom"],
          config: { env: { DEPLOY_KEY: "s3cret-value", MODE: "ci" }, custom: { test: "make" } },
        },
      },
    }),
    Date.now(),
  );
  const core = new QueenCore(new MemoryStore(), { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  try {
    const app = createApp(core, { worker: ["w"], api: ["api-token-0123456789"] }, { projects });
    const page = await (await app.request("/run?project=acme%2Fwidget&branch=main")).text();
    ok(!page.includes("s3cret-value"), "a project's secret-named value reached the form");
    match(page, /MODE/);
    const { form } = await runFormOfProject(projects, "acme/widget", "main");
    ok(form && form.config.includes(SECRET_MASK));
    const restored = await withProjectSecrets(projects, form!);
    const config = JSON.parse(restored.config);
    equal(config.env.DEPLOY_KEY, "s3cret-value");
    equal(config.env.MODE, "ci");
    // Another repository's form gets nothing of this project's.
    const other = await withProjectSecrets(projects, {
      ...form!,
      repo: "https://git.example/x/y.git",
    });
    ok(!other.config.includes("s3cret-value"));
  } finally {
    core.close();
  }
});
