/**
 * End to end, the dashboard as a team lives in it, in Debian's Chromium: projects and branches,
 * filters kept in the URL, line permalinks, find-in-log beyond the rendered tail, badges per
 * result, the run form from a project, draining a drone, axe-core on every page, and the
 * README's screenshot, made here from a real run: always taken and checked, written to
 * docs/dashboard.png only when asked (`deno task screenshot`), so a test run changes no tracked file.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { dirname, join } from "node:path";
import axe from "axe-core";
import type { Page } from "playwright-core";
import {
  api,
  API_TOKEN,
  customJob,
  ROOT,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
} from "./helpers/cluster.ts";
import { launchChromium } from "./helpers/browser.ts";
import { git, makeRepo } from "./helpers/git_repo.ts";

const ARTIFACTS = join(ROOT, "tests", "artifacts");
/** Where to keep the overview's screenshot, when set: `deno task screenshot` names the README's. */
const SCREENSHOT = Deno.env.get("STRIDER_SCREENSHOT");
const VIEWPORT = { width: 1280, height: 800 };

/** The width and height a PNG's header gives, or undefined when `bytes` is no PNG. */
function pngSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 24 || signature.some((b, i) => bytes[i] !== b)) return undefined;
  // The first chunk is IHDR: width and height, big-endian, after its length and type.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (new TextDecoder().decode(bytes.subarray(12, 16)) !== "IHDR") return undefined;
  return { width: view.getUint32(16), height: view.getUint32(20) };
}
const AXE_SOURCE = (axe as unknown as { source: string }).source;

/** Serious and critical axe-core violations on the page, as readable lines. */
async function axeProblems(page: Page): Promise<string[]> {
  // Evaluated through the debugger protocol, so the page's CSP does not apply to it.
  await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate(`(async () => {
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => v.id + ": " + v.help + " (" + v.nodes.map((n) => n.target.join(" ")).join(", ") + ")");
  })()`) as string[];
  return found;
}

function trigger(author: string, message: string) {
  return {
    trigger: {
      type: "manual",
      author: { name: author },
      message,
      timestamp: new Date().toISOString(),
      source: { type: "API", app: "e2e" },
    },
  };
}

Deno.test({
  name: "a team's dashboard: projects, filters, permalinks, find-in-log, badges, drain, axe",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const repo = await makeRepo({ "README.md": "team dashboard\n" });
    await git(repo.path, "branch", "feature/x");
    const queen = await startQueen();
    const worker = await startWorker(queen, { name: "team-drone", args: ["--labels", "linux"] });
    const browser = await launchChromium();
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
    const pagesChecked: string[] = [];
    const checkAxe = async (what: string) => {
      const problems = await axeProblems(page);
      equal(problems.length, 0, `axe-core on ${what}:\n${problems.join("\n")}`);
      pagesChecked.push(what);
    };
    try {
      const created = await api(queen, "/api/projects", {
        method: "POST",
        body: JSON.stringify({
          name: "acme/widget",
          repo: { url: repo.path },
          branches: {
            "*": { plugins: ["env", "custom"], config: { custom: { test: "echo from project" } } },
          },
        }),
      });
      equal(created.status, 201, await created.text());

      const passed = await submitJob(
        queen,
        customJob(repo.path, { test: "echo fine" }, trigger("Ada Lovelace", "works")),
      );
      await waitForJob(queen, passed);
      const failed = await submitJob(
        queen,
        customJob(repo.path, { test: "echo before; exit 3" }, {
          ref: { branch: "feature/x" },
          ...trigger("Grace Hopper", "breaks"),
        }),
      );
      await waitForJob(queen, failed);
      // More lines than any page renders at once, the needle near the start.
      const big = await submitJob(
        queen,
        customJob(repo.path, {
          test: "printf '%s-early-line\\n' NEEDLE\nseq 1 5000 | sed 's/^/row /'",
        }, trigger("Ada Lovelace", "long log")),
      );
      await waitForJob(queen, big);

      await t.step("the projects page lists the project with its branches", async () => {
        await page.goto(`${queen.url}/projects`);
        const section = page.locator("section.project", { hasText: "acme/widget" });
        await section.locator('tr[data-branch="main"]').waitFor();
        match(await section.locator('tr[data-branch="feature/x"]').innerText(), /failed/);
        await checkAxe("projects");
      });

      await t.step("filters live in the URL: a shared or reloaded view is the same", async () => {
        await page.goto(`${queen.url}/projects/${encodeURIComponent("acme/widget")}`);
        equal(await page.locator("#project-jobs tbody tr[data-job]").count(), 3);
        await page.locator("#f-result").selectOption("failed");
        await page.getByRole("button", { name: "Filter" }).click();
        await page.waitForURL(/result=failed/);
        const rows = page.locator("#project-jobs tbody tr[data-job]");
        equal(await rows.count(), 1);
        equal(await rows.first().getAttribute("data-job"), failed);
        await page.reload();
        equal(await rows.count(), 1);
        equal(await page.locator("#f-result").inputValue(), "failed");
        // Another filter, opened from its URL alone.
        await page.goto(
          `${queen.url}/projects/${encodeURIComponent("acme/widget")}?author=ada&branch=main`,
        );
        const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-job")));
        equal(ids.sort().join(","), [passed, big].sort().join(","));
        match(await page.locator("figure.chart").innerText(), /last 3 runs/);
        await checkAxe("project");
        await page.screenshot({ path: join(ARTIFACTS, "project.png"), fullPage: true });
      });

      await t.step("a badge per branch, coloured by its latest result", async () => {
        const colourOf = async (branch: string) => {
          const url = `${queen.url}/badge/${encodeURIComponent("acme/widget")}/${
            encodeURIComponent(branch)
          }.svg`;
          const response = await page.goto(url);
          match(response?.headers()["cache-control"] ?? "", /max-age=\d+/);
          match(response?.headers()["content-type"] ?? "", /^image\/svg\+xml/);
          return await page.locator("rect[data-result]").evaluate((r) => [
            r.getAttribute("data-result"),
            r.getAttribute("fill"),
          ]);
        };
        const [mainResult, mainFill] = await colourOf("main");
        const [featureResult, featureFill] = await colourOf("feature/x");
        const [noneResult, noneFill] = await colourOf("never-built");
        equal(mainResult, "passed");
        equal(featureResult, "failed");
        equal(noneResult, "unknown");
        equal(mainFill, "#1a7f37");
        equal(featureFill, "#c62828");
        equal(noneFill, "#5f6368");
      });

      await t.step("a failed job opens on its failing command", async () => {
        await page.goto(`${queen.url}/jobs/${failed}`);
        const open = page.locator("details.cmd[open]");
        equal(await open.count(), 1);
        match(await open.innerText(), /exit 3/);
        equal(await page.locator('details.phase[data-phase="test"][open]').count(), 1);
        await checkAxe("job");
      });

      const logUrl = `${queen.url}/jobs/${big}/log`;
      await t.step("a line range permalink survives a reload", async () => {
        await page.goto(`${logUrl}#L4990-L4995`);
        const lit = page.locator(".line.hl");
        await waitUntil(async () => await lit.count() === 6, 15_000, "the range lit");
        match(await lit.first().innerText(), /4990/);
        await page.reload();
        await waitUntil(async () => await lit.count() === 6, 15_000, "the range lit again");
        ok(await page.locator("#L4990").isVisible());
        // A line outside the rendered window: the page fetches the window around it.
        await page.goto(`${logUrl}#L3-L4`);
        await page.waitForURL(/line=3#L3-L4$/);
        await waitUntil(async () => await lit.count() === 2, 15_000, "lines 3 and 4 lit");
        // Shift-click extends a range from the clicked line.
        await page.locator("#L10 a.ln").click();
        await page.locator("#L12 a.ln").click({ modifiers: ["Shift"] });
        await waitUntil(() => page.url().endsWith("#L10-L12"), 15_000, "the range link");
        equal(await lit.count(), 3);
        await checkAxe("log");
        await page.screenshot({ path: join(ARTIFACTS, "log.png") });
      });

      await t.step("find-in-log searches the whole log, not the rendered tail", async () => {
        await page.goto(`${queen.url}/jobs/${big}`);
        ok(
          !(await page.locator("section.output").innerText()).includes("NEEDLE-early-line"),
          "the job page renders only the tail",
        );
        await page.getByRole("link", { name: "Full log, search" }).click();
        await page.waitForURL(logUrl);
        ok(!(await page.locator("#log-lines").innerText()).includes("NEEDLE-early-line"));
        await page.getByLabel("Find in the whole log").fill("needle-EARLY");
        await page.getByRole("button", { name: "Find" }).click();
        const results = page.locator("ol.matches li");
        await results.first().waitFor();
        equal(await results.count(), 1);
        const [, line] =
          (await results.first().innerText()).match(/^line (\d+): NEEDLE-early-line/) ??
            [];
        ok(line, "the match names its line");
        match(await page.locator('[data-field="searched"]').innerText(), /whole log/);
        await results.first().getByRole("link").click();
        await page.waitForURL(new RegExp(`line=${line}.*#L${line}$`));
        await waitUntil(
          async () => (await page.locator(".line.hl").innerText()).includes("NEEDLE"),
          15_000,
          "the found line lit",
        );
        const api = await fetch(`${logUrl}/search?q=row%20499`);
        const found = await api.json();
        equal(found.next, null);
        equal(found.matches.length, 11, "row 499 and rows 4990 to 4999");
        await page.goto(`${logUrl}?ts=1&line=1`);
        match(await page.locator("#L1 .lts").innerText(), /^\d\d:\d\d:\d\d\.\d{3}$/);
      });

      await t.step("the run form fills in a registered project's branch settings", async () => {
        await page.goto(`${queen.url}/run`);
        await page.locator("#run-project").selectOption("acme/widget");
        await page.getByRole("button", { name: "Fill in from the project" }).click();
        await page.waitForURL(/project=acme%2Fwidget/);
        equal(await page.locator("#run-repo").inputValue(), repo.path);
        equal(await page.locator("#run-plugins").inputValue(), "env, custom");
        match(await page.locator("#run-config").inputValue(), /echo from project/);
        await checkAxe("run");
      });

      await t.step("the overview, and the README's screenshot from this run", async () => {
        await page.goto(`${queen.url}/`);
        await page.locator('#drones tr[data-drone="team-drone"]').waitFor();
        await checkAxe("overview");
        // Taken every run, kept in a temporary folder unless asked for (STRIDER_SCREENSHOT).
        const shot = join(await Deno.makeTempDir({ prefix: "strider-screenshot-" }), "dash.png");
        await page.screenshot({ path: shot });
        const png = await Deno.readFile(shot);
        deepEqual(pngSize(png), VIEWPORT, "the screenshot is not a PNG of the viewport's size");
        ok(png.length > 10_000, `a ${png.length}-byte screenshot shows next to nothing`);
        if (SCREENSHOT) await Deno.copyFile(shot, SCREENSHOT);
        await Deno.remove(dirname(shot), { recursive: true });
        // Keyboard: the first Tab reaches the skip link, drawn with a visible focus ring.
        await page.keyboard.press("Tab");
        const focus = await page.evaluate(`(() => {
          const el = document.activeElement;
          const style = getComputedStyle(el);
          return [el.textContent, style.outlineStyle, style.outlineWidth];
        })()`) as string[];
        equal(focus[0], "Skip to content");
        ok(focus[1] !== "none" && focus[2] !== "0px", `focus ring: ${focus.join(" ")}`);
        await page.keyboard.press("Enter");
        await page.keyboard.press("Tab");
        ok(
          await page.evaluate(`document.querySelector("main").contains(document.activeElement)`),
          "after the skip link, Tab moves into the page's content",
        );
      });

      await t.step("an operator drains a drone from its page; the worker leaves", async () => {
        await page.goto(`${queen.url}/`);
        await page.getByRole("link", { name: "team-drone" }).click();
        await page.waitForURL(/\/drones\//);
        match(await page.locator("dl.facts").innerText(), /linux/);
        match(await page.locator("dl.facts").innerText(), /custom/);
        match(
          await page.locator("section", { hasText: "Recent jobs" }).innerText(),
          new RegExp(big),
        );
        await checkAxe("drone");
        await page.screenshot({ path: join(ARTIFACTS, "drone.png"), fullPage: true });
        equal(await page.getByRole("button", { name: "Drain" }).count(), 0);
        await page.getByRole("link", { name: "Log in" }).first().click();
        await page.getByLabel("API token").fill(API_TOKEN);
        await page.getByRole("button", { name: "Log in" }).click();
        await page.waitForURL(/\/drones\//);
        await checkAxe("drone, logged in");
        await page.getByRole("button", { name: "Drain" }).click();
        await page.waitForURL(/\/drones\//);
        const status = await worker.exit(30_000);
        equal(status.code, 0, "the drained worker exits cleanly");
        await waitUntil(
          async () => (await (await api(queen, "/api/drones")).json()).drones.length === 0,
          15_000,
          "the drone gone",
        );
      });
      equal(errors.join("\n"), "");
      ok(pagesChecked.length >= 7, `axe checked ${pagesChecked.join(", ")}`);
    } finally {
      await browser.close();
      await worker.stop();
      await queen.proc.stop();
    }
  },
});
