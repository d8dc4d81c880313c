/**
 * Job turnaround: `POST /api/jobs` to the queen recording `job:done` for a trivial job (fetch a
 * repository, run `true`) on one real worker, beside doing the same by hand: a plain `git clone`
 * into a fresh folder, `sh -c true` in it, then removing it. Two repositories: a small local one,
 * and one with 1,000 commits and a few MB served over HTTP by `git http-backend`, where a repeat
 * job fetches only what is new into the worker's mirror while the direct clone transfers it all.
 * Samples alternate between the two so that both see the same machine.
 */
import { startQueen } from "../../queen/mod.ts";
import {
  API_TOKEN,
  customJob,
  denoProc,
  join,
  makeRepo,
  ROOT,
  row,
  run,
  startWorkerProc,
  stats,
  submit,
  tempDir,
  timed,
  waitUntil,
  Watcher,
  WORKER_TOKEN,
} from "./lib.ts";
import type { BenchContext, Measure, Proc, Row } from "./lib.ts";

/** The fetch done by hand: a plain clone (of a local path, or over HTTP), then the test. */
async function direct(repo: string, dir: string): Promise<void> {
  await run("git", ["clone", "-q", "--", repo, dir]);
  await run("sh", ["-c", "true"], dir);
  await Deno.remove(dir, { recursive: true });
}

/**
 * A repository of `commits` commits, each rewriting one of `FILES` files with `bytes` new
 * incompressible bytes (base64 of random data), written with one `git fast-import`; returns its
 * bare path. As in real projects, the history is far larger than the tree it checks out.
 */
const FILES = 20;

async function makeHistory(dir: string, commits: number, bytes: number): Promise<string> {
  const repo = join(dir, "history.git");
  await run("git", ["init", "-q", "--bare", "-b", "main", repo]);
  const chunks: string[] = [];
  const raw = new Uint8Array(Math.ceil(bytes * 3 / 4));
  for (let i = 0; i < commits; i++) {
    crypto.getRandomValues(raw.subarray(0, Math.min(raw.length, 65_536)));
    for (let at = 65_536; at < raw.length; at += 65_536) {
      crypto.getRandomValues(raw.subarray(at, Math.min(raw.length, at + 65_536)));
    }
    const data = btoa(String.fromCharCode(...raw)).slice(0, bytes) + "\n";
    const message = `commit ${i}\n`;
    chunks.push(
      `commit refs/heads/main\nmark :${i + 1}\n` +
        `committer Bench <bench@example.com> ${1_700_000_000 + i} +0000\n` +
        `data ${message.length}\n${message}` + (i > 0 ? `from :${i}\n` : "") +
        `M 100644 inline files/${i % FILES}.txt\ndata ${data.length}\n${data}\n`,
    );
  }
  const child = new Deno.Command("git", {
    args: ["-C", repo, "fast-import", "--quiet"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(chunks.join("")));
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error(`fast-import: ${new TextDecoder().decode(out.stderr)}`);
  await run("git", ["-C", repo, "gc", "-q"]);
  return repo;
}

/** Bytes under `dir`, recursively. */
async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) total += await sizeOf(path);
    else if (entry.isFile) total += (await Deno.stat(path)).size;
  }
  return total;
}

const HTTP_USER = "bench";
const HTTP_PASSWORD = "bench-http-password-0123";

export const turnaround: Measure = {
  name: "turnaround",
  async run(ctx: BenchContext): Promise<Row[]> {
    const count = ctx.quick ? 10 : 40;
    const tmp = await tempDir("turnaround");
    const repo = await makeRepo(tmp.path);
    const commits = 1_000;
    const history = await makeHistory(tmp.path, commits, 3_000);
    const historyBytes = await sizeOf(history);
    const queen = await startQueen({
      port: 0,
      host: "127.0.0.1",
      data: join(tmp.path, "data"),
      workerTokens: [WORKER_TOKEN],
      apiTokens: [API_TOKEN],
      log: () => {},
    });
    const watcher = new Watcher(queen.core);
    let worker: Proc | undefined;
    let server: Proc | undefined;
    try {
      server = denoProc("git-http", ["--allow-all"], join(ROOT, "scripts/bench/git_http.ts"), [
        tmp.path,
        HTTP_USER,
        HTTP_PASSWORD,
      ]);
      const origin = (await server.waitForLine(/^listening (\S+)/, 30_000))[1];
      const httpUrl = `${origin}/history.git`;
      const httpDirect = `${
        origin.replace("://", `://${HTTP_USER}:${HTTP_PASSWORD}@`)
      }/history.git`;
      worker = startWorkerProc(queen.url, "turnaround", join(tmp.path, "work"), [
        "--capacity",
        "1",
      ]);
      await waitUntil(() => queen.core.drones.size === 1, 60_000, "the worker to connect");
      const job = async (id: string, spec: Record<string, unknown>) => {
        const begin = performance.now();
        await submit(queen.url, { ...spec, job_id: id });
        const done = await watcher.when(id, "job:done", 60_000);
        watcher.forget(id);
        return done - begin;
      };
      const series = async (name: string, spec: Record<string, unknown>, url: string) => {
        for (let i = 0; i < 3; i++) {
          await job(`${name}-warm-${i}`, spec);
          await direct(url, join(tmp.path, `${name}-warm-${i}`));
        }
        const strider: number[] = [];
        const baseline: number[] = [];
        const fetchStep: number[] = [];
        const testStep: number[] = [];
        for (let i = 0; i < count; i++) {
          strider.push(await job(`${name}-${i}`, spec));
          baseline.push(await timed(() => direct(url, join(tmp.path, `${name}-direct-${i}`))));
          // Where the job's time went, by the worker's own timestamps: the fetch, then `true`.
          const events = (await queen.core.store.events(`${name}-${i}`)).map((e) => e.data) as {
            event: string;
            timestamp?: number;
          }[];
          const starts = events.filter((e) => e.event === "job:cmd:start");
          const dones = events.filter((e) => e.event === "job:cmd:done");
          if (starts.length === 2 && dones.length === 2) {
            fetchStep.push(dones[0].timestamp! - starts[0].timestamp!);
            testStep.push(dones[1].timestamp! - starts[1].timestamp!);
          }
        }
        return { s: stats(strider), b: stats(baseline), fetchStep, testStep };
      };
      const local = await series("turn", customJob(repo, "true"), repo);
      const http = await series(
        "http",
        customJob(httpUrl, "true", {
          repo: {
            url: httpUrl,
            auth: { type: "https", username: HTTP_USER, password: HTTP_PASSWORD },
          },
        }),
        httpDirect,
      );
      return [
        row({
          group: "turnaround",
          measure: "turnaround POST→job:done, clone + `true`, real worker",
          unit: "ms",
          median: local.s.median,
          p99: local.s.p99,
          n: local.s.n,
          baseline: "`git clone` of the local path + `sh -c true` directly",
          baseline_median: local.b.median,
          baseline_p99: local.b.p99,
          notes: {
            fetch_step_ms_p50: stats(local.fetchStep).median,
            test_step_ms_p50: stats(local.testStep).median,
          },
          target: "≤ 1.3× direct",
          check: (r) => r.ratio <= 1.3,
        }),
        row({
          group: "turnaround",
          measure: `turnaround, repeat job of a ${commits}-commit repo over HTTP (mirror cache)`,
          unit: "ms",
          median: http.s.median,
          p99: http.s.p99,
          n: http.s.n,
          baseline: "`git clone` over HTTP (`git http-backend`) + `sh -c true` directly",
          baseline_median: http.b.median,
          baseline_p99: http.b.p99,
          notes: {
            repo_mb: Math.round(historyBytes / 10_000) / 100,
            commits,
            files: FILES,
            fetch_step_ms_p50: stats(http.fetchStep).median,
            test_step_ms_p50: stats(http.testStep).median,
          },
          target: "≤ 0.5× direct",
          check: (r) => r.ratio <= 0.5,
        }),
      ];
    } finally {
      watcher.stop();
      await worker?.stop();
      await server?.stop();
      await queen.close();
      await tmp.cleanup();
    }
  },
};
