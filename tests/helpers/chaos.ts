/**
 * Chaos for the "zero loss" promise: a real queen and real workers (subprocesses) run jobs that
 * print numbered lines, while a seeded schedule of faults kills workers with SIGKILL (and
 * restarts them on the same workdir), freezes them with SIGSTOP past the lease (then SIGCONT),
 * and kills the queen with SIGKILL (restarted on the same --data and port). The end state is
 * then checked: every job final, none lost, every passed job's final attempt holding its lines
 * exactly once and in order, and no attempt charged that never started.
 *
 * Used by tests/e2e_chaos_test.ts (small) and scripts/soak.ts (`deno task soak`, large).
 */
import { join } from "node:path";
import type { JobView } from "../../protocol/mod.ts";
import {
  api,
  ENTRY,
  getJob,
  Proc,
  startQueen,
  submitJob,
  WORKER_PERMISSIONS,
  WORKER_TOKEN,
} from "./cluster.ts";
import type { TestQueen } from "./cluster.ts";
import { makeRepo } from "./git_repo.ts";

export type FaultKind = "worker-kill" | "worker-stop" | "queen-kill";

export interface ChaosOptions {
  /** Seeds the fault schedule and the jobs' lengths. */
  seed: number;
  jobs: number;
  workers: number;
  /** Slots per worker. */
  capacity: number;
  /** Numbered lines each job prints. */
  lines: number;
  /** Range of a job's running time, in seconds. */
  jobSeconds: [number, number];
  faultsPerMinute: number;
  /** How long faults are injected, in seconds, from the first submit. */
  faultSeconds: number;
  /** The queen's --lease, in seconds; a frozen worker stays stopped 1.5 s past it. */
  lease: number;
  /** Give up waiting for jobs to finish after this long (from the first submit), seconds. */
  deadlineSeconds: number;
  /** The queen's --max-attempts; its default when absent. */
  maxAttempts?: number;
  /** The first faults come in this order (the rest are drawn at random). */
  firstFaults?: FaultKind[];
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  results: Record<string, number>;
  /** Number of charged (started) attempts → jobs. */
  attempts: Record<number, number>;
  linesChecked: number;
  faults: Record<FaultKind, number>;
  elapsedMs: number;
  /** Jobs not final when the run gave up. */
  unfinished: number;
  /** Everything that breaks the promise, one sentence each; empty when it held. */
  problems: string[];
  /** Workspaces left in the workers' workdirs at the end. */
  workspacesLeft: number;
}

/** A small, fast, seedable PRNG (mulberry32): the same seed gives the same schedule. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A free loopback port, so that a restarted queen listens where its workers reconnect. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The shell script of a job printing `lines` numbered lines over about `seconds`. */
function script(lines: number, seconds: number): string {
  const bursts = 10;
  const every = Math.max(1, Math.ceil(lines / bursts));
  const pause = (seconds / bursts).toFixed(2);
  return `i=1; while [ $i -le ${lines} ]; do echo "line $i"; ` +
    `if [ $((i % ${every})) -eq 0 ]; then sleep ${pause}; fi; i=$((i+1)); done`;
}

/** The numbered lines of a job's test command as the queen shows its final attempt. */
export function numberedLines(view: JobView): number[] {
  const output = view.phases.test.commands.map((c) => c.output).join("");
  return [...output.matchAll(/^line (\d+)$/gm)].map((m) => Number(m[1]));
}

class ChaosWorker {
  proc: Proc | undefined;
  stopped = false;
  constructor(readonly name: string, readonly workdir: string, readonly args: string[]) {}

  start(url: string): void {
    this.proc = new Proc([
      "run",
      ...WORKER_PERMISSIONS,
      ENTRY,
      "worker",
      "--connect",
      url,
      "--token",
      WORKER_TOKEN,
      "--name",
      this.name,
      "--workdir",
      this.workdir,
      ...this.args,
    ]);
  }
}

/** Runs one chaos session and reports what happened; it never throws for a broken promise. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {});
  const random = prng(options.seed);
  const repo = await makeRepo({ "README.md": "chaos\n" });
  const port = freePort();
  const data = await Deno.makeTempDir({ prefix: "strider-chaos-queen-" });
  const queenArgs = ["--port", String(port), "--lease", String(options.lease)];
  if (options.maxAttempts) queenArgs.push("--max-attempts", String(options.maxAttempts));
  let queen: TestQueen = await startQueen({ data, args: queenArgs });
  const workers: ChaosWorker[] = [];
  for (let i = 1; i <= options.workers; i++) {
    const workdir = await Deno.makeTempDir({ prefix: `strider-chaos-w${i}-` });
    const worker = new ChaosWorker(`chaos-w${i}`, workdir, [
      "--capacity",
      String(options.capacity),
      "--kill-grace",
      "1",
    ]);
    worker.start(queen.url);
    workers.push(worker);
  }
  const faults: Record<FaultKind, number> = { "worker-kill": 0, "worker-stop": 0, "queen-kill": 0 };
  const problems: string[] = [];
  const ids: string[] = [];
  const began = Date.now();
  const timers = new Set<Promise<unknown>>();
  let queenDown: Promise<void> | undefined;
  try {
    for (let j = 0; j < options.jobs; j++) {
      const [low, high] = options.jobSeconds;
      const seconds = low + random() * (high - low);
      ids.push(
        await submitJob(queen, {
          repo: { url: repo.path },
          ref: { branch: "main" },
          plugins: ["custom"],
          config: { custom: { test: script(options.lines, seconds) } },
        }),
      );
    }
    log(`submitted ${ids.length} jobs`);

    // The fault schedule, from the seed: the first faults (if given) evenly spread over the
    // first half of the period, each at a jittered time; then exponential gaps at the rate.
    const rate = options.faultsPerMinute / 60;
    const first = [...(options.firstFaults ?? [])];
    // Counted once: `first` is emptied as its faults are injected.
    const firstCount = first.length;
    const spacing = options.faultSeconds / 2 / (firstCount + 1);
    let at = 0;
    for (let n = 0; rate > 0 || n < firstCount; n++) {
      at = n < firstCount
        ? spacing * (n + 0.75 + random() / 2)
        : at + -Math.log(1 - random()) / rate;
      if (at > options.faultSeconds || (n >= firstCount && rate <= 0)) break;
      const wait = began + at * 1000 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await queenDown;
      const draw = random();
      const kind: FaultKind = first.shift() ??
        (draw < 0.45 ? "worker-kill" : draw < 0.9 ? "worker-stop" : "queen-kill");
      const pick = random();
      if (kind === "queen-kill") {
        faults[kind]++;
        log(`${((Date.now() - began) / 1000).toFixed(1)} s: kill -9 the queen, restart it`);
        queen.proc.signal("SIGKILL");
        queenDown = (async () => {
          await queen.proc.exit(10_000);
          queen = await startQueen({ data, args: queenArgs });
        })();
        await queenDown;
        continue;
      }
      const able = workers.filter((w) => !w.stopped);
      if (able.length === 0) continue;
      const worker = able[Math.floor(pick * able.length)];
      faults[kind]++;
      if (kind === "worker-kill") {
        log(`${((Date.now() - began) / 1000).toFixed(1)} s: kill -9 ${worker.name}, restart it`);
        worker.proc?.signal("SIGKILL");
        await worker.proc?.exit(10_000);
        worker.start(queen.url);
      } else {
        log(`${((Date.now() - began) / 1000).toFixed(1)} s: SIGSTOP ${worker.name} past the lease`);
        worker.stopped = true;
        worker.proc?.signal("SIGSTOP");
        const resume = new Promise((r) => setTimeout(r, (options.lease + 1.5) * 1000)).then(() => {
          worker.proc?.signal("SIGCONT");
          worker.stopped = false;
        });
        timers.add(resume);
      }
    }
    await Promise.all(timers);
    await queenDown;

    // Every job must end; poll the queen until they have, or the deadline passes.
    const deadline = began + options.deadlineSeconds * 1000;
    const views = new Map<string, JobView>();
    while (Date.now() < deadline) {
      for (const id of ids) {
        if (views.get(id)?.status === "done") continue;
        try {
          views.set(id, await getJob(queen, id));
        } catch {
          // The queen may be restarting.
        }
      }
      if (ids.every((id) => views.get(id)?.status === "done")) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const elapsedMs = Date.now() - began;

    const results: Record<string, number> = {};
    const attempts: Record<number, number> = {};
    let linesChecked = 0;
    let unfinished = 0;
    const expected = Array.from({ length: options.lines }, (_, i) => i + 1);
    for (const id of ids) {
      const view = views.get(id);
      if (!view || view.status !== "done") {
        unfinished++;
        problems.push(`job ${id} is not final (${view?.status ?? "unknown"})`);
        continue;
      }
      results[view.result!] = (results[view.result!] ?? 0) + 1;
      const charged = view.attempts.filter((a) => a.startedAt !== null).length;
      attempts[charged] = (attempts[charged] ?? 0) + 1;
      for (const attempt of view.attempts) {
        if (attempt.startedAt === null) {
          problems.push(`job ${id} attempt ${attempt.attempt} is charged but never started`);
        }
      }
      if (view.result === "lost") problems.push(`job ${id} was lost: ${view.error}`);
      else if (view.result !== "passed") {
        problems.push(`job ${id} ended ${view.result}: ${view.error}`);
      } else {
        const lines = numberedLines(view);
        linesChecked += lines.length;
        if (lines.join(",") !== expected.join(",")) {
          const dup = lines.length - new Set(lines).size;
          problems.push(
            `job ${id}: ${lines.length} lines (${dup} doubled) where ${options.lines} were ` +
              "expected once each, in order",
          );
        }
      }
    }

    // Workspaces of killed and superseded attempts are gone once the workers catch up.
    let workspacesLeft = 0;
    const settle = Date.now() + 15_000;
    do {
      workspacesLeft = 0;
      for (const worker of workers) {
        try {
          for await (const _ of Deno.readDir(join(worker.workdir, "jobs"))) workspacesLeft++;
        } catch {
          // None yet.
        }
      }
      if (workspacesLeft === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    } while (Date.now() < settle);
    if (workspacesLeft) problems.push(`${workspacesLeft} workspaces left on the workers`);

    const integrity = await (await api(queen, "/healthz")).text().catch(() => "");
    log(`queen health at the end: ${integrity.slice(0, 200)}`);
    return {
      seed: options.seed,
      results,
      attempts,
      linesChecked,
      faults,
      elapsedMs,
      unfinished,
      problems,
      workspacesLeft,
    };
  } finally {
    for (const worker of workers) {
      worker.proc?.signal("SIGCONT");
      await worker.proc?.stop("SIGKILL");
    }
    await queen.proc.stop("SIGKILL");
  }
}
