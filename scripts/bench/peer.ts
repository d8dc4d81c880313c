/**
 * The peer row: the same work through Buildbot 3.7 (Debian's `buildbot` and `buildbot-worker`,
 * installed with apt-get when missing) and through strider, interleaved, on this machine:
 *
 * - turnaround: one job at a time that clones a small local repository and runs `true`;
 * - throughput: 200 such jobs on 2 workers with 2 slots each;
 * - a 100 MB log: a job printing 100 MB (lines of 100 `x`).
 *
 * Both are driven the same way: jobs are triggered through the REST API (Buildbot's
 * `forceschedulers` JSON-RPC, strider's `POST /api/jobs`) and completion is found by polling the
 * REST API every 10 ms. Debian ships no `buildbot-www`, and the master refuses to start without
 * a `base` www plugin: the script writes a minimal local one (an empty page; the REST API is the
 * master's own). Writes the side-by-side table into BENCHMARKS.md (between markers) and
 * `bench/peer.json`.
 *
 * `deno task bench:peer`; `PEER_QUICK=1` for smaller counts.
 */
import {
  api,
  join,
  makeRepo,
  MB,
  pool,
  Proc,
  reapAll,
  ROOT,
  round,
  sleep,
  startQueenProc,
  startWorkerProc,
  stats,
  submit,
  tempDir,
  waitUntil,
} from "./lib.ts";

const QUICK = Deno.env.get("PEER_QUICK") === "1";
const TURNS = QUICK ? 5 : 15;
const JOBS = QUICK ? 40 : 200;
const LOG_RUNS = QUICK ? 1 : 2;
const LOG_BYTES = 100 * MB;
const POLL_MS = 10;
const LOG_COMMAND = `yes ${"x".repeat(100)} | head -c ${LOG_BYTES}`;

async function onPath(program: string): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** Installs Debian's buildbot and buildbot-worker when they are missing. */
async function ensureBuildbot(): Promise<void> {
  if (await onPath("buildbot") && await onPath("buildbot-worker")) return;
  console.log("peer: installing buildbot and buildbot-worker with apt-get");
  const root = Deno.uid() === 0;
  const apt = (args: string[]) =>
    new Deno.Command(root ? "apt-get" : "sudo", {
      args: root ? args : ["-n", "apt-get", ...args],
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "inherit",
      stderr: "inherit",
    }).output();
  await apt(["update", "-q"]);
  const out = await apt(["install", "-y", "-q", "buildbot", "buildbot-worker"]);
  if (!out.success) {
    throw new Error("apt-get install buildbot buildbot-worker failed: run it as root and retry");
  }
}

/** A free loopback port (bound and released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function must(program: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${program} ${args.join(" ")}: ${text}`);
  }
}

/**
 * The stand-in for `buildbot-www`: a package named `buildbot_www` with the `base` entry point
 * the master looks up, serving one empty page.
 */
async function writeWwwStub(site: string): Promise<void> {
  const pkg = join(site, "buildbot_www");
  const info = join(site, "buildbot_www-3.7.0.dist-info");
  await Deno.mkdir(join(pkg, "static"), { recursive: true });
  await Deno.mkdir(info, { recursive: true });
  await Deno.writeTextFile(
    join(pkg, "__init__.py"),
    "# A stand-in for buildbot-www, which Debian does not ship (written by scripts/bench/peer.ts).\n" +
      "from buildbot.www.plugin import Application\n" +
      'ep = Application(__name__, "Buildbot UI (stand-in: no web UI)")\n',
  );
  await Deno.writeTextFile(join(pkg, "VERSION"), "3.7.0\n");
  await Deno.writeTextFile(
    join(pkg, "static", "index.html"),
    "<!doctype html><title>stub</title>\n",
  );
  await Deno.writeTextFile(
    join(info, "METADATA"),
    "Metadata-Version: 2.1\nName: buildbot-www\nVersion: 3.7.0\n",
  );
  await Deno.writeTextFile(
    join(info, "entry_points.txt"),
    "[buildbot.www]\nbase = buildbot_www:ep\n",
  );
}

/** A Buildbot master and two workers, each worker running up to two builds. */
class Buildbot {
  #procs: Proc[] = [];
  #builders = new Map<string, number>();
  constructor(readonly url: string) {}

  static async start(dir: string, repo: string): Promise<Buildbot> {
    const site = join(dir, "site");
    await writeWwwStub(site);
    const env = { PYTHONPATH: site };
    const pb = freePort();
    const www = freePort();
    const master = join(dir, "master");
    await must("buildbot", ["create-master", "-q", master], env);
    const py = (s: string) => JSON.stringify(s);
    // A builder runs one build per worker at a time: two identical builders give each worker
    // two slots, as strider's `--capacity 2`.
    await Deno.writeTextFile(
      join(master, "master.cfg"),
      `from buildbot.plugins import schedulers, steps, util, worker
c = BuildmasterConfig = {}
c['workers'] = [worker.Worker("w1", "pw", max_builds=2), worker.Worker("w2", "pw", max_builds=2)]
c['protocols'] = {'pb': {'port': "tcp:${pb}:interface=127.0.0.1"}}
def clone_and(command):
    f = util.BuildFactory()
    f.addStep(steps.Git(repourl=${py(repo)}, branch="main", mode="full", method="clobber"))
    f.addStep(steps.ShellCommand(command=["sh", "-c", command]))
    return f
c['builders'] = [
    util.BuilderConfig(name="job-a", workernames=["w1", "w2"], factory=clone_and("true")),
    util.BuilderConfig(name="job-b", workernames=["w1", "w2"], factory=clone_and("true")),
    util.BuilderConfig(name="log", workernames=["w1"], factory=clone_and(${py(LOG_COMMAND)})),
]
c['schedulers'] = [schedulers.ForceScheduler(name="force", builderNames=["job-a", "job-b", "log"])]
c['www'] = dict(port="tcp:${www}:interface=127.0.0.1", plugins={})
c['db'] = {'db_url': "sqlite:///state.sqlite"}
c['buildbotNetUsageData'] = None
c['buildbotURL'] = "http://127.0.0.1:${www}/"
`,
    );
    const bb = new Buildbot(`http://127.0.0.1:${www}`);
    bb.#procs.push(
      new Proc("buildbot master", "buildbot", ["start", "--nodaemon", master], { env }),
    );
    await waitUntil(
      async () => {
        try {
          const response = await fetch(`${bb.url}/api/v2/builders`);
          const body = await response.json();
          for (const b of body.builders) bb.#builders.set(b.name, b.builderid);
          return bb.#builders.size === 3;
        } catch {
          return false;
        }
      },
      120_000,
      "the Buildbot master to answer",
    );
    for (const name of ["w1", "w2"]) {
      const worker = join(dir, name);
      await must("buildbot-worker", ["create-worker", "-q", worker, `127.0.0.1:${pb}`, name, "pw"]);
      bb.#procs.push(
        new Proc(`buildbot ${name}`, "buildbot-worker", ["start", "--nodaemon", worker]),
      );
    }
    await waitUntil(
      async () => {
        const body = await (await fetch(`${bb.url}/api/v2/workers`)).json();
        return body.workers.filter((w: { connected_to: unknown[] }) => w.connected_to.length > 0)
          .length === 2;
      },
      120_000,
      "both Buildbot workers to connect",
    );
    return bb;
  }

  /** Forces a build of `builder` through the REST API; returns its buildset id. */
  async force(builder: string): Promise<number> {
    const response = await fetch(`${this.url}/api/v2/forceschedulers/force`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        method: "force",
        id: 1,
        params: { builderid: String(this.#builders.get(builder)) },
      }),
    });
    const body = await response.json();
    if (!body.result) throw new Error(`force failed: ${JSON.stringify(body)}`);
    return body.result[0];
  }

  /** Buildset ids among `ids` that are complete (all must have succeeded). */
  async complete(ids: Set<number>): Promise<number> {
    const min = Math.min(...ids);
    const response = await fetch(
      `${this.url}/api/v2/buildsets?complete=true&bsid__ge=${min}` +
        "&field=bsid&field=results&field=complete",
    );
    const body = await response.json();
    if (!body.buildsets) throw new Error(`Buildbot: ${JSON.stringify(body)}`);
    let n = 0;
    for (const set of body.buildsets as { bsid: number; results: number }[]) {
      if (!ids.has(set.bsid)) continue;
      if (set.results !== 0) throw new Error(`Buildbot build ${set.bsid} failed`);
      n++;
    }
    return n;
  }

  async stop(): Promise<void> {
    for (const proc of this.#procs.reverse()) await proc.stop("SIGTERM", 20_000);
  }
}

/** Strider: a queen and two real workers of capacity 2 (subprocesses). */
async function startStrider(dir: string) {
  const queen = await startQueenProc(join(dir, "data"));
  const workers = ["s1", "s2"].map((name) =>
    startWorkerProc(queen.url, name, join(dir, name), ["--capacity", "2"])
  );
  await waitUntil(
    async () => {
      const body = await (await api(queen.url, "/api/drones")).json();
      return (body.drones ?? body).length === 2;
    },
    60_000,
    "both strider workers to connect",
  );
  return {
    url: queen.url,
    async stop() {
      for (const worker of workers) await worker.stop();
      await queen.proc.stop();
    },
  };
}

const spec = (repo: string, test: string) => ({
  repo: { url: repo },
  ref: { branch: "main" },
  plugins: ["custom"],
  config: { custom: { test } },
});

/** Polls until every strider job in `ids` is done (each must have passed). */
async function striderDone(url: string, ids: Set<string>, ms: number): Promise<void> {
  const pending = new Set(ids);
  const deadline = Date.now() + ms;
  while (pending.size > 0) {
    if (Date.now() > deadline) throw new Error(`${pending.size} strider jobs did not finish`);
    if (pending.size <= 4) {
      for (const id of [...pending]) {
        const view = await (await api(url, `/api/jobs/${id}`)).json();
        if (view.status !== "done") continue;
        if (view.result !== "passed") throw new Error(`strider job ${id}: ${view.result}`);
        pending.delete(id);
      }
    } else {
      const body = await (await api(url, "/api/jobs?status=done&limit=1000")).json();
      for (const job of body.jobs as { id: string; result: string }[]) {
        if (!pending.has(job.id)) continue;
        if (job.result !== "passed") throw new Error(`strider job ${job.id}: ${job.result}`);
        pending.delete(job.id);
      }
    }
    if (pending.size > 0) await sleep(POLL_MS);
  }
}

async function buildbotDone(bb: Buildbot, ids: Set<number>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (await bb.complete(ids) < ids.size) {
    if (Date.now() > deadline) throw new Error("Buildbot builds did not finish");
    await sleep(POLL_MS);
  }
}

interface PeerRow {
  measure: string;
  unit: string;
  strider: number;
  buildbot: number;
  notes: string;
}

async function main(): Promise<void> {
  await ensureBuildbot();
  const tmp = await tempDir("peer");
  const repo = await makeRepo(tmp.path);
  let bb: Buildbot | undefined;
  let strider: Awaited<ReturnType<typeof startStrider>> | undefined;
  const rows: PeerRow[] = [];
  const load = Deno.loadavg()[0];
  try {
    console.log("peer: starting Buildbot and strider");
    bb = await Buildbot.start(tmp.path, repo);
    strider = await startStrider(tmp.path);
    const s = strider;
    const b = bb;
    let n = 0;
    const striderJob = async (test: string, ms = 120_000) => {
      const id = await submit(s.url, spec(repo, test));
      await striderDone(s.url, new Set([id]), ms);
    };
    const buildbotJob = async (builder: string, ms = 300_000) => {
      await buildbotDone(b, new Set([await b.force(builder)]), ms);
    };
    const timedMs = async (body: () => Promise<unknown>) => {
      const start = performance.now();
      await body();
      return performance.now() - start;
    };

    console.log(`peer: turnaround, ${TURNS} jobs each, interleaved`);
    await striderJob("true");
    await buildbotJob("job-a");
    const turnS: number[] = [];
    const turnB: number[] = [];
    for (let i = 0; i < TURNS; i++) {
      turnS.push(await timedMs(() => striderJob("true")));
      turnB.push(await timedMs(() => buildbotJob(i % 2 ? "job-b" : "job-a")));
    }
    rows.push({
      measure: "trivial job turnaround (clone a small local repo + `true`), median",
      unit: "ms",
      strider: round(stats(turnS).median),
      buildbot: round(stats(turnB).median),
      notes: `${TURNS} jobs each, one at a time`,
    });

    console.log(`peer: throughput, ${JOBS} jobs on 2 workers ×2, in two interleaved halves`);
    let msS = 0;
    let msB = 0;
    for (let half = 0; half < 2; half++) {
      msS += await timedMs(async () => {
        const ids = await pool(JOBS / 2, 16, () => submit(s.url, spec(repo, "true")));
        await striderDone(s.url, new Set(ids), 600_000);
      });
      msB += await timedMs(async () => {
        const ids = await pool(JOBS / 2, 16, () => b.force(n++ % 2 ? "job-b" : "job-a"));
        await buildbotDone(b, new Set(ids), 1_200_000);
      });
    }
    rows.push({
      measure: `${JOBS} jobs on 2 workers ×2 (clone + \`true\`)`,
      unit: "jobs/s",
      strider: round(JOBS / (msS / 1000)),
      buildbot: round(JOBS / (msB / 1000)),
      notes: "from the first trigger to the last completion",
    });

    console.log(`peer: ${LOG_BYTES / MB} MB log, ${LOG_RUNS} each, interleaved`);
    let logS = 0;
    let logB = 0;
    for (let i = 0; i < LOG_RUNS; i++) {
      logS += await timedMs(() => striderJob(LOG_COMMAND, 600_000));
      logB += await timedMs(() => buildbotJob("log", 1_200_000));
    }
    rows.push({
      measure: `${LOG_BYTES / MB} MB log (clone + print it), job start to completion`,
      unit: "MB/s",
      strider: round(LOG_BYTES * LOG_RUNS / MB / (logS / 1000)),
      buildbot: round(LOG_BYTES * LOG_RUNS / MB / (logB / 1000)),
      notes: "the log stored by each system; includes the clone",
    });
  } finally {
    await strider?.stop().catch(() => {});
    await bb?.stop().catch(() => {});
    await reapAll();
    await tmp.cleanup();
  }
  await writeResults(rows, load);
}

async function writeResults(rows: PeerRow[], load: number): Promise<void> {
  const date = new Date().toISOString();
  await Deno.mkdir(join(ROOT, "bench"), { recursive: true });
  await Deno.writeTextFile(
    join(ROOT, "bench", "peer.json"),
    JSON.stringify({ date, load, quick: QUICK, rows }, null, 2) + "\n",
  );
  const ratio = (r: PeerRow) => r.unit === "ms" ? r.buildbot / r.strider : r.strider / r.buildbot;
  const table = [
    `Run of ${date.slice(0, 16).replace("T", " ")} UTC, \`deno task bench:peer\`${
      QUICK ? " (PEER_QUICK)" : ""
    }, load average ${load.toFixed(2)} at the start:`,
    "",
    "| measure | strider | Buildbot 3.7 | strider's advantage | notes |",
    "| --- | ---: | ---: | ---: | --- |",
    ...rows.map((r) =>
      `| ${r.measure} | ${r.strider} ${r.unit} | ${r.buildbot} ${r.unit} | ${
        ratio(r).toFixed(1)
      }× | ${r.notes} |`
    ),
    "",
    "Buildbot is Debian's `buildbot` and `buildbot-worker` 3.7 (installed by the script with " +
    "apt-get when missing), master and two workers on this machine, SQLite database; builds use " +
    '`steps.Git(mode="full", method="clobber")` (a fresh clone) then `ShellCommand`. Debian ships ' +
    "no `buildbot-www` and the master refuses to start without a www plugin: the script writes a " +
    "minimal local stand-in package (an empty page; the REST API is the master's own). Jobs are " +
    "triggered through each REST API (Buildbot's `forceschedulers` JSON-RPC, strider's " +
    "`POST /api/jobs`) and completion is found by polling each REST API every 10 ms. Samples " +
    "alternate between the two systems.",
  ].join("\n");
  const path = join(ROOT, "BENCHMARKS.md");
  const text = await Deno.readTextFile(path);
  const begin = "<!-- peer:begin -->";
  const end = "<!-- peer:end -->";
  const block = `${begin}\n${table}\n${end}`;
  const next = text.includes(begin)
    ? text.slice(0, text.indexOf(begin)) + block + text.slice(text.indexOf(end) + end.length)
    : text.replace("## Targets", `## Beside Buildbot\n\n${block}\n\n## Targets`);
  await Deno.writeTextFile(path, next);
  // Keep the file as `deno fmt` has it (the check in `deno task check`).
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", path], stdout: "null" }).output();
  console.log(table);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`bench:peer failed: ${(error as Error).stack ?? error}`);
    await reapAll();
    Deno.exit(1);
  }
}
