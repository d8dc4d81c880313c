/**
 * What every bench measure shares: result rows, statistics, bounded waits, subprocesses that are
 * always reaped, queens and workers as subprocesses, a small git repository, and readings of a
 * process's memory and CPU from /proc.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { QUEEN_V8_FLAGS } from "../../cli/runtime_flags.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const MAIN = join(ROOT, "main.ts");
export const WORKER_TOKEN = "bench-worker-token-0123456789";
export const API_TOKEN = "bench-api-token-0123456789";
export const QUEEN_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env"];
export const WORKER_PERMISSIONS = [...QUEEN_PERMISSIONS, "--allow-run", "--allow-sys"];
/** Decimal megabytes: what MB/s means throughout the bench. */
export const MB = 1_000_000;

/** One line of the table: strider's figure beside its baseline's, measured in the same run. */
export interface Row {
  /** The measure module that produced the row (`BENCH_ONLY` names). */
  group: string;
  measure: string;
  unit: string;
  /** Median (or the single value of a one-shot measure, e.g. a rate). */
  median: number;
  p99?: number;
  /** Samples behind `median`/`p99`. */
  n?: number;
  baseline: string;
  baseline_median: number;
  baseline_p99?: number;
  /**
   * Strider's cost over the baseline's cost: time over time, or the baseline's rate over
   * strider's rate. 1 is as cheap as the baseline; 2 is twice the cost.
   */
  ratio: number;
  target?: string;
  met?: boolean;
  /** Other figures taken with the row (peak memory, sample counts). */
  notes?: Record<string, number | string>;
  date?: string;
  /** The machine's 1-minute load average when the measure began. */
  load?: number;
}

/** What a measure gets from the runner. */
export interface BenchContext {
  quick: boolean;
  log: (message: string) => void;
}

/** One measure: `run` returns its rows; everything it starts is reaped before it resolves. */
export interface Measure {
  name: string;
  run(ctx: BenchContext): Promise<Row[]>;
}

/** Values in the same unit; `higherIsBetter` for rates, so the ratio stays a cost ratio. */
export function row(
  fields: Omit<Row, "ratio" | "met"> & { higherIsBetter?: boolean; check?: (r: Row) => boolean },
): Row {
  const { higherIsBetter, check, ...rest } = fields;
  const ratio = higherIsBetter
    ? rest.baseline_median / rest.median
    : rest.median / rest.baseline_median;
  // A baseline of zero (an idle server using no measurable CPU) has no ratio.
  const out: Row = { ...rest, ratio: Number.isFinite(ratio) ? round(ratio) : NaN };
  for (const key of ["median", "p99", "baseline_median", "baseline_p99"] as const) {
    if (out[key] !== undefined) out[key] = round(out[key]!);
  }
  if (check) out.met = check(out);
  return out;
}

export function round(n: number): number {
  if (!Number.isFinite(n)) return n;
  const digits = Math.abs(n) >= 100 ? 1 : Math.abs(n) >= 1 ? 2 : 3;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export interface Stats {
  n: number;
  median: number;
  p99: number;
  min: number;
  max: number;
}

export function stats(samples: readonly number[]): Stats {
  const sorted = samples.toSorted((a, b) => a - b);
  return {
    n: sorted.length,
    median: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it holds; throws naming `what` after `ms`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
  every = 10,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Every subprocess the bench started and has not reaped yet. */
const live = new Set<Proc>();

/**
 * A subprocess with the tail of its output kept for diagnostics. Registered until reaped, so
 * `reapAll` can kill whatever a failing measure left behind.
 */
export class Proc {
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  readonly #done: Promise<unknown>;
  output = "";
  exited = false;
  #lineListeners = new Set<(line: string) => void>();
  #partial = "";
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;

  constructor(
    readonly label: string,
    program: string,
    args: string[],
    options: { env?: Record<string, string>; cwd?: string; stdin?: boolean } = {},
  ) {
    this.child = new Deno.Command(program, {
      args,
      env: { NO_COLOR: "1", ...options.env },
      cwd: options.cwd,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    live.add(this);
    this.#stdin = options.stdin ? this.child.stdin.getWriter() : undefined;
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        this.output = (this.output + text).slice(-32_768);
        if (this.#lineListeners.size === 0) continue;
        const lines = (this.#partial + text).split("\n");
        this.#partial = lines.pop()!;
        for (const line of lines) for (const listener of this.#lineListeners) listener(line);
      }
    };
    this.status = this.child.status;
    this.status.then(() => this.exited = true);
    this.#done = Promise.all([
      this.status,
      collect(this.child.stdout).catch(() => {}),
      collect(this.child.stderr).catch(() => {}),
    ]);
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Calls `listener` with every complete line of output from now on. */
  onLine(listener: (line: string) => void): () => void {
    this.#lineListeners.add(listener);
    return () => this.#lineListeners.delete(listener);
  }

  /** Resolves with the first line that `pattern` matches (printed already, when `past`). */
  async waitForLine(pattern: RegExp, ms: number, past = true): Promise<RegExpMatchArray> {
    const { promise, resolve, reject } = Promise.withResolvers<RegExpMatchArray>();
    if (past) {
      for (const line of this.output.split("\n")) {
        const already = line.match(pattern);
        if (already) return already;
      }
    }
    const stop = this.onLine((line) => {
      const match = line.match(pattern);
      if (match) resolve(match);
    });
    this.status.then(() =>
      setTimeout(() => reject(new Error(`${this.label} exited; output:\n${this.output}`)), 50)
    );
    try {
      return await within(promise, ms, `${this.label} to print ${pattern}\n${this.output}`);
    } finally {
      stop();
    }
  }

  async write(line: string): Promise<void> {
    await this.#stdin?.write(new TextEncoder().encode(line + "\n"));
  }

  signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
  }

  /** Sends `signal`, waits up to `ms` for the exit (then SIGKILL), and for the output. */
  async stop(signal: Deno.Signal = "SIGTERM", ms = 10_000): Promise<Deno.CommandStatus> {
    this.signal(signal);
    const timer = setTimeout(() => this.signal("SIGKILL"), ms);
    try {
      try {
        await this.#stdin?.close();
      } catch {
        // The process already closed its stdin.
      }
      await this.#done;
      return await this.status;
    } finally {
      clearTimeout(timer);
      live.delete(this);
    }
  }

  /** Kills at once and reaps. */
  async kill(): Promise<Deno.CommandStatus> {
    return await this.stop("SIGKILL", 5_000);
  }
}

/** Kills and reaps every subprocess still running. */
export async function reapAll(): Promise<void> {
  await Promise.all([...live].map((proc) => proc.kill()));
}

/**
 * `BENCH_PROFILE=DIR`: queens and workers started by the bench write V8 CPU profiles into DIR
 * (summarise one with `deno run --allow-read scripts/bench/cpuprofile.ts FILE`).
 */
function profileFlags(): string[] {
  const dir = Deno.env.get("BENCH_PROFILE");
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

/** Runs `deno run` with a raised open-file limit (`ulimit -n`), the pid being deno's own. */
export function denoProc(
  label: string,
  permissions: string[],
  script: string,
  args: string[],
  options: { stdin?: boolean; env?: Record<string, string> } = {},
): Proc {
  return new Proc(label, "sh", [
    "-c",
    'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
    "sh",
    Deno.execPath(),
    "run",
    ...permissions,
    script,
    ...args,
  ], options);
}

/** A queen subprocess on a free loopback port. */
export interface QueenProc {
  url: string;
  proc: Proc;
  data: string;
}

export async function startQueenProc(
  data: string,
  args: string[] = [],
  label = "queen",
): Promise<QueenProc> {
  // The runtime flags every launcher gives a queen (cli/runtime_flags.ts).
  const proc = denoProc(label, [...QUEEN_PERMISSIONS, ...QUEEN_V8_FLAGS, ...profileFlags()], MAIN, [
    "queen",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--data",
    data,
    "--worker-token",
    WORKER_TOKEN,
    "--api-token",
    API_TOKEN,
    ...args,
  ]);
  const [, url] = await proc.waitForLine(/listening on (http:\/\/\S+)/, 60_000);
  return { url, proc, data };
}

/** A real worker subprocess. */
export function startWorkerProc(
  url: string,
  name: string,
  workdir: string,
  args: string[] = [],
): Proc {
  return denoProc(`worker ${name}`, [...WORKER_PERMISSIONS, ...profileFlags()], MAIN, [
    "worker",
    "--connect",
    url,
    "--token",
    WORKER_TOKEN,
    "--name",
    name,
    "--workdir",
    workdir,
    ...args,
  ]);
}

/** Calls the queen's API with the API token; every request has a deadline. */
export async function api(
  url: string,
  path: string,
  init: RequestInit = {},
  ms = 30_000,
): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${API_TOKEN}`);
  if (init.body) headers.set("content-type", "application/json");
  return await fetch(new URL(path, url), {
    ...init,
    headers,
    signal: init.signal ?? AbortSignal.timeout(ms),
  });
}

/** Submits a job; returns its id. */
export async function submit(url: string, spec: unknown): Promise<string> {
  const response = await api(url, "/api/jobs", { method: "POST", body: JSON.stringify(spec) });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`submit failed: ${response.status} ${text}`);
  return JSON.parse(text).id;
}

/** What `GET /healthz` says, or undefined while the queen does not answer. */
export async function healthz(
  url: string,
): Promise<{ drones: number; queued: number } | undefined> {
  try {
    const response = await fetch(new URL("/healthz", url), {
      signal: AbortSignal.timeout(5_000),
    });
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json();
  } catch {
    return undefined;
  }
}

/** A job spec running `custom` scripts against `repo`. */
export function customJob(repo: string, test: string, extra: Record<string, unknown> = {}) {
  return {
    repo: { url: repo },
    ref: { branch: "main" },
    plugins: ["custom"],
    config: { custom: { test } },
    ...extra,
  };
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: {
      GIT_AUTHOR_NAME: "bench",
      GIT_AUTHOR_EMAIL: "bench@strider.invalid",
      GIT_COMMITTER_NAME: "bench",
      GIT_COMMITTER_EMAIL: "bench@strider.invalid",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A small local git repository (a few files, one commit on `main`). */
export async function makeRepo(dir: string): Promise<string> {
  const repo = join(dir, "repo");
  await Deno.mkdir(join(repo, "src"), { recursive: true });
  await Deno.writeTextFile(join(repo, "README.md"), "# bench\n\nA small repository.\n");
  for (let i = 0; i < 8; i++) {
    await Deno.writeTextFile(
      join(repo, "src", `file${i}.ts`),
      `export const value${i} = ${i};\n`.repeat(50),
    );
  }
  await git(repo, "init", "-q", "-b", "main");
  await git(repo, "add", ".");
  await git(repo, "commit", "-q", "-m", "bench");
  return repo;
}

/** A temporary folder, removed by `cleanup`. */
export async function tempDir(prefix: string) {
  const path = await Deno.makeTempDir({ prefix: `strider-bench-${prefix}-` });
  return {
    path,
    cleanup: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Resident memory of a process, in bytes: now (`VmRSS`) and its peak (`VmHWM`). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (field: string) =>
    Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1]);
  return { rss: kb("VmRSS") * 1024, peak: kb("VmHWM") * 1024 };
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time a process has used so far (user + system), in seconds. */
export function cpuSecondsOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start at field 3, "state".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / TICKS_PER_SECOND;
}

/** Samples `pid`'s resident memory every `every` ms until stopped; keeps the peak. */
export function sampleMemory(pid: number, every = 20) {
  let peak = 0;
  const take = () => {
    try {
      peak = Math.max(peak, memoryOf(pid).rss);
    } catch {
      // The process is gone.
    }
  };
  take();
  const timer = setInterval(take, every);
  return {
    stop(): number {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

/**
 * Kills (by pid) every process whose working directory lies under `dir`: the job processes a
 * `kill -9`-ed worker leaves behind in its workspace.
 */
export function reapUnder(dir: string): number {
  let killed = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cwd = Deno.readLinkSync(`/proc/${entry.name}/cwd`);
      if (cwd === dir || cwd.startsWith(dir + "/")) {
        Deno.kill(Number(entry.name), "SIGKILL");
        killed++;
      }
    } catch {
      // Gone, or not ours to read.
    }
  }
  return killed;
}

/** Times `body` in milliseconds. */
export async function timed(body: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await body();
  return performance.now() - start;
}

/** Runs `tasks` with at most `limit` in flight. */
export async function pool<T>(
  count: number,
  limit: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** Runs a command to completion, output discarded; throws when it fails. */
export async function run(program: string, args: string[], cwd?: string): Promise<void> {
  const out = await new Deno.Command(program, {
    args,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Joins paths (re-exported so measures need one import). */
export { join };

/** The slice of an in-process queen's core the watcher needs. */
interface Followable {
  hub: {
    followAll(
      listener: (event: { data: { event: string; id: string; attempt: number } }) => void,
    ): () => void;
  };
}

/**
 * Notes when an in-process queen records each event (`performance.now()`, in the queen's own
 * process), and lets a measure wait for one: `job:started` of attempt 2 of job X, say.
 */
export class Watcher {
  #seen = new Map<string, number>();
  #waiting = new Map<string, (at: number) => void>();
  #stop: () => void;
  /** Called with every recorded event, after it is noted. */
  onEvent?: (event: { event: string; id: string; attempt: number }, at: number) => void;

  constructor(core: Followable, events: readonly string[] = ["job:started", "job:done"]) {
    const wanted = new Set(events);
    this.#stop = core.hub.followAll(({ data }) => {
      const at = performance.now();
      this.onEvent?.(data, at);
      if (!wanted.has(data.event)) return;
      for (
        const key of [
          `${data.id}\u0000${data.event}`,
          `${data.id}\u0000${data.event}\u0000${data.attempt}`,
        ]
      ) {
        if (!this.#seen.has(key)) this.#seen.set(key, at);
        this.#waiting.get(key)?.(at);
        this.#waiting.delete(key);
      }
    });
  }

  /** When the queen recorded `event` of job `id` (of `attempt`, when given); waits up to `ms`. */
  async when(id: string, event: string, ms: number, attempt?: number): Promise<number> {
    const key = `${id}\u0000${event}${attempt === undefined ? "" : `\u0000${attempt}`}`;
    const seen = this.#seen.get(key);
    if (seen !== undefined) return seen;
    const { promise, resolve } = Promise.withResolvers<number>();
    this.#waiting.set(key, resolve);
    try {
      return await within(promise, ms, `${event} of job ${id}`);
    } finally {
      this.#waiting.delete(key);
    }
  }

  /** Forgets what was seen of job `id`. */
  forget(id: string): void {
    for (const key of this.#seen.keys()) if (key.startsWith(`${id}\u0000`)) this.#seen.delete(key);
  }

  stop(): void {
    this.#stop();
  }
}

/** Round trips of one small message over a bare loopback WebSocket (server in this process). */
export async function bareWebSocketRoundTrips(count: number): Promise<number[]> {
  const controller = new AbortController();
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen: ({ port }) => resolve(port),
  }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (m) => socket.send(m.data);
    return response;
  });
  try {
    const socket = new WebSocket(`ws://127.0.0.1:${await listening}/`);
    await within(new Promise((r) => socket.onopen = r), 10_000, "bare WebSocket to open");
    const samples: number[] = [];
    for (let i = 0; i < count + 20; i++) {
      const { promise, resolve: answered } = Promise.withResolvers<void>();
      socket.onmessage = () => answered();
      const start = performance.now();
      socket.send(JSON.stringify({ event: "ping", t: Date.now() }));
      await within(promise, 10_000, "bare WebSocket echo");
      // The first few warm the connection up, as the warm-up jobs do for strider.
      if (i >= 20) samples.push(performance.now() - start);
    }
    socket.close();
    await within(new Promise((r) => socket.onclose = r), 10_000, "bare WebSocket to close");
    return samples;
  } finally {
    controller.abort();
    await server.finished;
  }
}
