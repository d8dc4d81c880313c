/**
 * End to end, the dashboard as a person uses it: a real queen and worker, real repositories, and
 * Debian's Chromium driven by playwright-core (`bash .ci/run` installs it; without it the browser
 * tests fail saying so); the socket and access tests need no browser.
 */
import { equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import {
  api,
  API_TOKEN,
  customJob,
  getJob,
  ROOT,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { launchChromium } from "./helpers/browser.ts";
import { makeRepo } from "./helpers/git_repo.ts";

const ARTIFACTS = join(ROOT, "tests", "artifacts");

/**
 * Runs `step`, in which the pages are expected to load `status` responses: Chromium logs each as
 * a console error, which is not a fault of the page.
 */
async function expecting(errors: string[], status: number, step: () => Promise<void>) {
  const before = errors.length;
  await step();
  const during = errors.splice(before);
  errors.push(...during.filter((e) => !e.includes(`status of ${status}`)));
}

/** Collects every page error and console error of `page` into `errors`. */
function watchErrors(page: Page, errors: string[]): void {
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console error: ${message.text()}`);
  });
}

/** A file the job's script waits for, so the test decides when its output continues. */
async function gate(): Promise<{ path: string; open: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "strider-gate-" });
  const path = join(dir, "open");
  return { path, open: () => Deno.writeTextFile(path, "") };
}

const waitFor = (path: string) => `while [ ! -e ${path} ]; do sleep 0.05; done`;

/** The text of the job page's output area. */
async function outputText(page: Page): Promise<string> {
  return await page.locator("section.output").innerText();
}

/**
 * A job page's facts, state and output as markup, with what may differ without a reader seeing
 * it left out: how output text is split into spans (colour runs are kept), relative times.
 */
async function jobMarkup(page: Page): Promise<string> {
  // In the page (a string: these tests are type-checked without the DOM's types).
  return await page.evaluate(`(() => {
    const walk = (node) => {
      if (node.nodeType === Node.TEXT_NODE) return node.textContent;
      if (!(node instanceof Element)) return "";
      if (node.matches("time[data-ago]")) return "<time>";
      if (node.matches("pre.log > code")) {
        // Runs of text by the classes (colours) and links around them.
        const runs = [];
        const texts = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
        let last = "";
        for (let t = texts.nextNode(); t; t = texts.nextNode()) {
          const el = t.parentElement;
          const cls = el === node ? "" : el.className;
          const href = el.closest("a")?.href ?? "";
          const style = cls || href ? cls + "|" + href : "";
          if (style === last && runs.length) runs[runs.length - 1] += t.textContent;
          else runs.push("[" + style + "]" + t.textContent);
          last = style;
        }
        return "<code>" + runs.join("") + "</code>";
      }
      const attrs = [...node.attributes].map((a) => a.name + '="' + a.value + '"').sort();
      return "<" + node.tagName + " " + attrs.join(" ") + ">" +
        [...node.childNodes].map(walk).join("") + "</>";
    };
    return ["h1", "dl.facts", '[data-field="error"]', '[data-field="waiting"]', "section.output"]
      .map((selector) => walk(document.querySelector(selector))).join("\\n")
      .replaceAll("><", ">\\n<");
  })()`);
}

Deno.test({
  name: "the dashboard shows drones, live output and results, and runs and cancels jobs",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const repo = await makeRepo({ "README.md": "dashboard test\n" });
    const queen = await startQueen();
    const workers = [
      await startWorker(queen, { name: "dash-alpha", args: ["--labels", "linux,fast"] }),
    ];
    const browser = await launchChromium();
    const errors: string[] = [];
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watchErrors(page, errors);
    try {
      await t.step(
        "the overview lists a connected drone, and a new one without a reload",
        async () => {
          await page.goto(`${queen.url}/`);
          const row = page.locator('#drones tr[data-drone="dash-alpha"]');
          await row.waitFor();
          match(await row.innerText(), /custom/);
          match(await row.innerText(), /linux, fast/);
          await page.evaluate(() => Object.assign(globalThis, { stillTheSamePage: true }));
          workers.push(await startWorker(queen, { name: "dash-beta" }));
          await page.locator('#drones tr[data-drone="dash-beta"]').waitFor({ timeout: 15_000 });
          ok(await page.evaluate(() => "stillTheSamePage" in globalThis), "the page reloaded");
        },
      );

      let liveId = "";
      await t.step("a running job's page shows lines as they stream, then the result", async () => {
        const [first, second] = [await gate(), await gate()];
        liveId = await submitJob(
          queen,
          customJob(repo.path, {
            test: [
              "echo 'line one'",
              waitFor(first.path),
              "echo 'line two'",
              "printf '\\033[32mgreen line\\033[0m plain after\\n'",
              waitFor(second.path),
              "echo 'line three'",
            ].join("\n"),
          }, {
            trigger: {
              type: "manual",
              author: { name: "Ada Lovelace" },
              message: "Check the live page",
              timestamp: new Date().toISOString(),
              source: { type: "API", app: "e2e" },
            },
          }),
        );
        await waitUntil(
          async () =>
            (await getJob(queen, liveId)).phases.test.commands[0]?.output.includes("line one"),
          30_000,
          "the job's first line",
        );
        await page.goto(`${queen.url}/jobs/${liveId}`);
        await page.evaluate(() => Object.assign(globalThis, { stillTheSamePage: true }));
        match(await page.locator("dl.facts").innerText(), /Ada Lovelace/);
        match(await page.locator("dl.facts").innerText(), /Check the live page/);
        await page.locator("pre.log", { hasText: "line one" }).waitFor();
        equal(await page.locator('[data-field="state"]').innerText(), "running");

        await first.open();
        await page.locator("pre.log", { hasText: "line two" }).waitFor({ timeout: 15_000 });
        await page.locator("pre.log .ansi-green-fg", { hasText: "green line" }).waitFor();
        await page.screenshot({ path: join(ARTIFACTS, "job-running.png"), fullPage: true });

        await second.open();
        await page.locator('[data-field="state"]', { hasText: "passed" }).waitFor({
          timeout: 30_000,
        });
        const text = await outputText(page);
        match(text, /line one\nline two\ngreen line plain after\nline three/);
        const logs = (await page.locator("pre.log").allInnerTexts()).join("\n");
        ok(!logs.includes("\x1b") && !logs.includes("[32m"), "escape codes reached the page");
        ok(await page.evaluate(() => "stillTheSamePage" in globalThis), "the page reloaded");
        await page.screenshot({ path: join(ARTIFACTS, "job.png"), fullPage: true });
      });

      await t.step("a page opened after the job finished shows all of its output", async () => {
        const late = await context.newPage();
        watchErrors(late, errors);
        await late.goto(`${queen.url}/jobs/${liveId}`);
        equal(await late.locator('[data-field="state"]').innerText(), "passed");
        const text = await outputText(late);
        match(text, /\$ git fetch/);
        match(text, /line one\nline two\ngreen line plain after\nline three/);
        equal(await late.locator(".ansi-green-fg").innerText(), "green line");
        // The page that followed the job live shows what the queen renders of the finished job.
        equal(await jobMarkup(page), await jobMarkup(late));
        await late.close();
      });

      await t.step("the overview lists the job with its trigger and result", async () => {
        await page.goto(`${queen.url}/`);
        const row = page.locator(`#jobs tr[data-job="${liveId}"]`);
        await row.waitFor();
        const text = await row.innerText();
        match(text, /passed/);
        match(text, /Ada Lovelace: Check the live page/);
        match(text, /main/);
        await page.screenshot({ path: join(ARTIFACTS, "overview.png"), fullPage: true });
      });

      await t.step("a queued job is followed from the queue to its result", async () => {
        const id = await submitJob(
          queen,
          customJob(repo.path, { test: "echo 'ran on the gpu drone'" }, { labels: ["gpu"] }),
        );
        const overview = await context.newPage();
        watchErrors(overview, errors);
        await overview.goto(`${queen.url}/`);
        const queued = overview.locator(`#queue tr[data-job="${id}"]`);
        match(await queued.innerText(), /gpu/);
        await page.goto(`${queen.url}/jobs/${id}`);
        equal(await page.locator('[data-field="state"]').innerText(), "queued");
        match(await page.locator('[data-field="waiting"]').innerText(), /gpu/);
        workers.push(await startWorker(queen, { name: "dash-gpu", args: ["--labels", "gpu"] }));
        await page.locator('[data-field="state"]', { hasText: "passed" }).waitFor({
          timeout: 30_000,
        });
        match(await page.locator('[data-field="drone"]').innerText(), /dash-gpu/);
        match(await outputText(page), /ran on the gpu drone/);
        ok(await page.locator('[data-field="waiting"]').isHidden());
        await queued.waitFor({ state: "detached", timeout: 15_000 });
        await overview.close();
      });

      await t.step("actions need the token: the form logs in once", async () => {
        await page.goto(`${queen.url}/jobs/${liveId}`);
        equal(await page.locator("form.rerun").count(), 0);
        await page.getByRole("link", { name: "Log in" }).first().click();
        await expecting(errors, 401, async () => {
          await page.getByLabel("API token").fill("not-the-token");
          await page.getByRole("button", { name: "Log in" }).click();
          await page.getByRole("alert").filter({ hasText: "not this queen's API token" }).waitFor();
        });
        await page.getByLabel("API token").fill(API_TOKEN);
        await page.getByRole("button", { name: "Log in" }).click();
        await page.waitForURL(`${queen.url}/jobs/${liveId}`);
        await page.locator("form.rerun").waitFor();
        const cookies = await context.cookies();
        const session = cookies.find((c) => c.name === "strider_session");
        ok(session?.httpOnly, "the session cookie is HttpOnly");
        equal(session?.sameSite, "Strict");
        ok(!session?.value.includes(API_TOKEN), "the cookie holds the token itself");
      });

      let formId = "";
      await t.step("the trigger form starts a job", async () => {
        await page.goto(`${queen.url}/run`);
        await page.getByLabel("Repository").fill(repo.path);
        await page.getByLabel("Branch").fill("main");
        await page.getByLabel("test", { exact: true }).fill('echo "from the form: $GREETING"');
        await page.getByLabel("Environment variables").fill("GREETING=hello");
        await page.getByLabel("Message (optional)").fill("Started from the form");
        await page.getByRole("button", { name: "Run" }).click();
        await page.waitForURL(/\/jobs\/[^/]+$/);
        formId = new URL(page.url()).pathname.split("/").pop()!;
        await page.locator('[data-field="state"]', { hasText: "passed" }).waitFor({
          timeout: 30_000,
        });
        match(await outputText(page), /from the form: hello/);
        const job = await getJob(queen, formId);
        equal(job.spec.trigger?.source.type, "UI");
        equal(job.spec.trigger?.message, "Started from the form");
      });

      await t.step("the trigger form lists the problems of a bad job", async () => {
        await page.goto(`${queen.url}/run`);
        await page.getByLabel("Repository").fill("https://example.invalid/repo.git");
        await page.getByLabel("Branch").fill("-bad");
        await page.getByLabel("test", { exact: true }).fill("true");
        const alert = page.getByRole("alert").filter({ hasText: "The job was not started" });
        await expecting(errors, 400, async () => {
          await page.getByRole("button", { name: "Run" }).click();
          await alert.waitFor();
        });
        match(await alert.innerText(), /branch/);
        equal(await page.getByLabel("Repository").inputValue(), "https://example.invalid/repo.git");
      });

      await t.step("cancel stops a running job", async () => {
        const started = await gate();
        const id = await submitJob(
          queen,
          customJob(repo.path, { test: `touch ${started.path}; sleep 60` }),
        );
        await page.goto(`${queen.url}/jobs/${id}`);
        await waitUntil(() => existsSync(started.path), 30_000, "the job to start");
        await page.locator('[data-field="state"]', { hasText: "running" }).waitFor();
        await page.getByRole("button", { name: "Cancel" }).click();
        await page.locator('[data-field="state"]', { hasText: "cancelled" }).waitFor({
          timeout: 30_000,
        });
        equal((await getJob(queen, id)).result, "cancelled");
        ok(await page.locator("form.cancel").isHidden());
      });

      await t.step("re-run starts the same job again", async () => {
        await page.goto(`${queen.url}/jobs/${formId}`);
        await page.getByRole("button", { name: "Re-run" }).click();
        await page.waitForURL((url) => !url.pathname.endsWith(formId));
        const rerunId = new URL(page.url()).pathname.split("/").pop()!;
        await page.locator('[data-field="state"]', { hasText: "passed" }).waitFor({
          timeout: 30_000,
        });
        match(await outputText(page), /from the form: hello/);
        equal((await getJob(queen, rerunId)).retryOf, formId);
      });

      await t.step("the overview reads well at phone width", async () => {
        const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
        watchErrors(phone, errors);
        await phone.goto(`${queen.url}/`);
        await phone.locator('#drones tr[data-drone="dash-alpha"]').waitFor();
        // Evaluated in the page, where `document` exists.
        const width = await phone.evaluate("document.documentElement.scrollWidth") as number;
        ok(width <= 390, `the page is ${width} px wide at a 390 px viewport`);
        await phone.screenshot({ path: join(ARTIFACTS, "overview-phone.png"), fullPage: true });
        await phone.close();
      });

      await t.step("no page logged an error", () => {
        equal(errors.join("\n"), "");
      });
    } finally {
      await browser.close();
      for (const worker of workers) await worker.stop();
      await queen.proc.stop();
    }
  },
});

Deno.test({
  name: "a 50 MB job log opens fast: the page renders its tail and links to the rest",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const repo = await makeRepo({ "README.md": "big log\n" });
    const queen = await startQueen();
    const worker = await startWorker(queen, { name: "big", args: ["--output-limit", "80"] });
    const browser = await launchChromium();
    const errors: string[] = [];
    try {
      // 500,000 numbered lines of 100 bytes: 50 MB.
      const script = "seq -f 'line %06g ' 1 500000 | sed 's/$/" + "x".repeat(87) + "/'";
      const id = await submitJob(queen, customJob(repo.path, { test: script }));
      const job = await waitForJob(queen, id, 120_000);
      equal(job.result, "passed", job.error ?? "");
      const page = await browser.newPage();
      watchErrors(page, errors);
      const started = Date.now();
      await page.goto(`${queen.url}/jobs/${id}`);
      const took = Date.now() - started;
      ok(took < 5_000, `the page took ${took} ms to load`);
      const tail = page.locator(".log-tail pre.log");
      match(await tail.innerText(), /line 500000 x+\n?$/);
      const lines = (await tail.innerText()).trim().split("\n").length;
      ok(lines <= 2000, `the page rendered ${lines} lines of the log`);
      const html = (await page.content()).length;
      ok(html < 2_000_000, `the page is ${html} characters`);
      await page.getByRole("link", { name: "Show earlier output" }).first().click();
      await page.locator(".log-tail pre.log", { hasText: "line 497000 " }).waitFor();
      equal(await page.locator(".log-tail a", { hasText: "the raw log" }).count(), 1);
      // The command's own output (what the queen kept of it) loads earlier parts in place too.
      const command = page.locator("details.cmd", { hasText: "seq -f" });
      ok(!(await command.locator("pre.log").innerText()).includes("line 007000 "));
      await command.locator("a.earlier").click();
      await command.locator("pre.log", { hasText: "line 007000 " }).waitFor();
      await page.screenshot({ path: join(ARTIFACTS, "job-big-log.png") });
      equal(errors.join("\n"), "");
    } finally {
      await browser.close();
      await worker.stop();
      await queen.proc.stop();
    }
  },
});

Deno.test({
  name: "a job taken back from a busy drone's queue is followed to the drone that runs it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const repo = await makeRepo({ "README.md": "taken back\n" });
    const queen = await startQueen();
    const workers = [await startWorker(queen, { name: "busy", args: ["--capacity", "1"] })];
    const browser = await launchChromium();
    const errors: string[] = [];
    const hold = await gate();
    try {
      const long = await submitJob(queen, customJob(repo.path, { test: waitFor(hold.path) }));
      await waitUntil(
        async () => (await getJob(queen, long)).status === "started",
        30_000,
        "start",
      );
      // The only drone is full: the next job waits in its queue, dispatched but not started.
      const id = await submitJob(
        queen,
        customJob(repo.path, {
          test: [
            "echo 'ran where free <img src=x onerror=alert(1)>'",
            // OSC 8 links: http(s) ones become links, others stay text without a link.
            "printf '\\033]8;;https://example.com/ok\\033\\\\safe\\033]8;;\\033\\\\ " +
            "\\033]8;;javascript:alert(1)\\033\\\\evil\\033]8;;\\033\\\\\\n'",
          ].join("\n"),
        }),
      );
      await waitUntil(async () => (await getJob(queen, id)).drone === "busy", 30_000, "dispatch");
      const page = await browser.newPage();
      watchErrors(page, errors);
      await page.goto(`${queen.url}/jobs/${id}`);
      equal(await page.locator('[data-field="state"]').innerText(), "dispatched");
      // A free drone comes: the queen takes the job back (job:returned) and sends it there.
      workers.push(await startWorker(queen, { name: "free" }));
      await page.locator('[data-field="state"]', { hasText: "passed" }).waitFor({
        timeout: 30_000,
      });
      equal(await page.locator('[data-field="drone"]').innerText(), "free");
      const attempts = await page.locator('[data-field="attempts"]').innerText();
      ok(!attempts.includes("busy"), `the returned attempt is still shown: ${attempts}`);
      match(await outputText(page), /ran where free <img src=x onerror=alert\(1\)>/);
      // Output streamed in is text: no markup of its own, links only to http(s).
      equal(await page.locator("pre.log img").count(), 0);
      equal(await page.locator('pre.log a[href="https://example.com/ok"]').innerText(), "safe");
      equal(await page.locator('pre.log a[href^="javascript"]').count(), 0);
      match(await outputText(page), /evil/);
      const fresh = await browser.newPage();
      await fresh.goto(`${queen.url}/jobs/${id}`);
      equal(await jobMarkup(page), await jobMarkup(fresh));
      equal(errors.join("\n"), "");
    } finally {
      await hold.open();
      await browser.close();
      for (const worker of workers) await worker.stop();
      await queen.proc.stop();
    }
  },
});

/** A WebSocket client of `/ws/browser` that keeps every frame it gets. */
async function browserSocket(queen: TestQueen, headers?: HeadersInit) {
  const url = queen.url.replace(/^http/, "ws") + "/ws/browser";
  // Deno's WebSocket takes headers (for the cookie and Origin tests).
  const ws = new WebSocket(url, headers ? { headers } : undefined);
  const frames: Record<string, unknown>[] = [];
  ws.onmessage = (message) => frames.push(JSON.parse(message.data));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("the browser socket did not open"));
  });
  const closed = new Promise((resolve) => ws.onclose = resolve);
  return { ws, frames, close: async () => (ws.close(), await closed) };
}

Deno.test({
  name: "the browser socket catches a late joiner up with no gap and no duplicate",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const repo = await makeRepo({ "README.md": "socket\n" });
    const queen = await startQueen();
    const worker = await startWorker(queen, { name: "sock" });
    try {
      const step = await gate();
      const id = await submitJob(
        queen,
        customJob(repo.path, {
          test: `for i in $(seq 1 40); do echo "early $i"; done; ${
            waitFor(step.path)
          }; for i in $(seq 1 200); do echo "late $i"; done`,
        }),
      );
      // Four reads in a row: behind a balancer (`STRIDER_TEST_CLUSTER`) each queen shows them,
      // as the one that does not run the job shows its row (rewritten every 500 ms or so).
      const early = async () =>
        (await getJob(queen, id)).phases.test.commands[0]?.output.includes("early 40");
      await waitUntil(
        async () => await early() && await early() && await early() && await early(),
        30_000,
        "the early lines",
      );
      const client = await browserSocket(queen);
      client.ws.send(JSON.stringify({ event: "job:query-info", id, tail: 10 }));
      // Opened while the socket is mid-way: live events must follow job:info exactly.
      await step.open();
      await waitForJob(queen, id);
      await waitUntil(
        () => client.frames.some((f) => f.event === "browser" && f.type === "job:done"),
        15_000,
        "job:done over the socket",
      );
      const [info, ...rest] = client.frames as {
        event: string;
        n: number;
        args: { n: number }[];
        omitted?: Record<string, number>;
        job: { phases: { test: { commands: { num: number; output: string }[] } } };
      }[];
      equal(info.event, "job:info");
      const test = info.job.phases.test.commands[0];
      equal(test.output.trim().split("\n").length, 10, "job:info sent only the asked tail");
      ok((info.omitted?.[String(test.num)] ?? 0) > 0, "job:info says what it left out");
      const numbers = rest.flatMap((f) => f.args.map((a) => a.n));
      const all = await (await api(queen, `/api/jobs/${id}/events`)).text();
      const last = Math.max(...[...all.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])));
      equal(numbers[0], info.n + 1, "the first live event follows job:info's n");
      equal(
        numbers.join(","),
        Array.from({ length: last - info.n }, (_, i) => info.n + 1 + i).join(","),
      );
      await client.close();
    } finally {
      await worker.stop();
      await queen.proc.stop();
    }
  },
});

Deno.test({
  name: "a --private queen shows nothing without the token, and cookies act only with CSRF",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const queen = await startQueen({ args: ["--private"] });
    try {
      const page = await fetch(`${queen.url}/`, { redirect: "manual" });
      await page.body?.cancel();
      equal(page.status, 303);
      match(page.headers.get("location") ?? "", /^\/login\?next=%2F/);
      equal((await api(queen, "/api/jobs", { token: null })).status, 401);
      equal((await api(queen, "/api/jobs")).status, 200);
      const socket = await fetch(`${queen.url}/ws/browser`, { headers: { upgrade: "websocket" } });
      await socket.body?.cancel();
      equal(socket.status, 401);
      const health = await fetch(`${queen.url}/healthz`);
      await health.body?.cancel();
      equal(health.status, 200);

      const login = await fetch(`${queen.url}/login`, {
        method: "POST",
        body: new URLSearchParams({ token: API_TOKEN, next: "/" }),
        redirect: "manual",
      });
      await login.body?.cancel();
      equal(login.status, 303);
      const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
      match(login.headers.get("set-cookie") ?? "", /HttpOnly/i);
      match(login.headers.get("set-cookie") ?? "", /SameSite=Strict/i);

      const overview = await fetch(`${queen.url}/`, { headers: { cookie } });
      const html = await overview.text();
      equal(overview.status, 200);
      const csrf = html.match(/<meta name="csrf-token" content="([^"]+)"/)?.[1];
      ok(csrf, "the page carries the CSRF token");
      equal((await api(queen, "/api/jobs", { token: null, headers: { cookie } })).status, 200);

      const spec = JSON.stringify({ repo: { url: "/nonexistent" }, ref: { branch: "main" } });
      const post = (headers: Record<string, string>) =>
        fetch(`${queen.url}/api/jobs`, {
          method: "POST",
          body: spec,
          headers: { "content-type": "application/json", ...headers },
        }).then(async (r) => (await r.body?.cancel(), r.status));
      equal(await post({ cookie }), 401, "a cookie without the CSRF token must not act");
      equal(await post({ cookie, "x-csrf-token": "forged" }), 401);
      equal(
        await post({ cookie, "x-csrf-token": csrf, origin: "https://evil.example" }),
        401,
        "another origin must not act",
      );
      equal(await post({ cookie, "x-csrf-token": csrf, origin: queen.url }), 201);

      const form = await fetch(`${queen.url}/run`, {
        method: "POST",
        headers: { cookie },
        body: new URLSearchParams({ repo: "/nonexistent", branch: "main", test: "true" }),
        redirect: "manual",
      });
      await form.body?.cancel();
      equal(form.status, 403, "a form post without the CSRF token must not act");

      const client = await browserSocket(queen, { cookie, origin: queen.url });
      client.ws.send(JSON.stringify({ event: "overview:follow" }));
      await waitUntil(() => client.frames.some((f) => f.event === "overview"), 10_000, "overview");
      client.ws.send(JSON.stringify({ event: "nonsense" }));
      await waitUntil(() => client.frames.some((f) => f.event === "error"), 10_000, "error frame");
      await client.close();
    } finally {
      await queen.proc.stop();
    }
  },
});
