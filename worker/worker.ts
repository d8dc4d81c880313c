/**
 * The worker role: connects out to the queen, says what it can do, runs the jobs it is given
 * (up to its capacity, the rest waiting in its own queue), and streams their events back.
 */
import { join } from "node:path";
import type { DispatchedJob, DroneInfo, QueenFrame } from "../protocol/mod.ts";
import { PROTOCOL_VERSION, VERSION } from "../protocol/mod.ts";
import { QueenConnection, QueenRefusedError } from "./connection.ts";
import { httpArtifactSender } from "./artifacts.ts";
import { CacheStore } from "./cache_store.ts";
import { passedEnv } from "./job_env.ts";
import { JobRun } from "./job_run.ts";
import { Outbox } from "./outbox.ts";
import { loadPluginFiles } from "./plugin_files.ts";
import { killLeftovers } from "./process_ledger.ts";
import { BUILTIN_PLUGINS } from "./plugins.ts";
import type { Plugin } from "./plugins.ts";
import { checkIsolation, prepareWorkdir, sandboxSettings } from "./sandbox.ts";
import type { Isolation } from "./sandbox.ts";

/** Settings of `strider worker`. */
export interface WorkerOptions {
  connect: string;
  token: string;
  name: string;
  capacity: number;
  speed: number;
  workdir: string;
  labels: string[];
  isolation: Isolation;
  /** Under bwrap: the user jobs run as (a root worker only; default nobody). */
  runAs?: string;
  /** Under bwrap: processes the job's user may have, and MiB of data memory per process. */
  maxProcs?: number;
  maxMemoryMib?: number;
  /** Seconds between SIGTERM and SIGKILL when a job's command is stopped. */
  killGrace: number;
  /** Bytes of output one job may send (default 64 MiB). */
  outputLimit?: number;
  /** Keep the workspaces of the last N jobs for inspection (default 0: remove each at once). */
  keepWorkspaces?: number;
  /** A PEM CA certificate to trust when the queen's URL is https (a private CA). */
  ca?: string;
  /** A folder of plugin files (`*.json`) to load at start. */
  pluginsDir?: string;
  /** Exit after this many jobs (an ephemeral worker); 0 means never. */
  maxJobs?: number;
  /** Names of worker environment variables passed on to every job (`--env-pass`). */
  envPass?: string[];
  /** Bytes all job caches together may take under `WORKDIR/cache/jobs`; 0 turns caches off. */
  cacheMaxBytes?: number;
  log?: (message: string) => void;
}

/** A running worker. */
export interface RunningWorker {
  /** Stop taking jobs, finish the running ones, then stop. Resolves with the exit code. */
  drain(): Promise<number>;
  /** Cancel the running jobs (cleanup still runs), then stop. */
  stop(): Promise<number>;
  /** Resolves with the process exit code once the worker has stopped. */
  finished: Promise<number>;
  /** What the worker is doing now, for its health and metrics endpoint. */
  stats(): WorkerStats;
}

/** A worker's state as `--health-addr` reports it. */
export interface WorkerStats {
  name: string;
  connected: boolean;
  draining: boolean;
  capacity: number;
  running: number;
  waiting: number;
  /** Events not yet acknowledged by the queen (in memory and spooled). */
  unacked: number;
  /** Finished attempts by result, since start. */
  finished: Record<string, number>;
}

/** Job caches' default size cap: 2 GiB. */
const DEFAULT_CACHE_MAX_BYTES = 2 * 1024 * 1024 * 1024;

/** Longest a job's output waits for room in the outbox before it spools to disk instead. */
const ROOM_WAIT_MS = 2_000;

/** How long a stopping worker waits for the queen to acknowledge its last events. */
const FINAL_ACK_TIMEOUT_MS = 30_000;
/**
 * How long a draining worker waits for the queen to take the results it holds: a queen being
 * restarted must not make a finished job run again. A second signal waits only the short time.
 */
const DRAIN_ACK_TIMEOUT_MS = 10 * 60_000;

const runKey = (id: string, attempt: number) => `${id}\u0000${attempt}`;

/** Starts a worker; it runs until drained, stopped or refused by the queen. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const log = options.log ??
    ((message: string) => console.error(`worker ${options.name}: ${message}`));
  const sandbox = await sandboxSettings(options);
  await Deno.mkdir(options.workdir, { recursive: true });
  await prepareWorkdir(sandbox, options.workdir);
  await checkIsolation(sandbox, options.workdir);
  const leftovers = await killLeftovers(join(options.workdir, "pids"));
  // Spooled events of an earlier run belong to attempts the queen has re-queued or will.
  await Deno.remove(join(options.workdir, "spool"), { recursive: true }).catch(() => {});
  // So do the workspaces it left (killed, or superseded before it could remove them).
  const keepAny = (options.keepWorkspaces ?? 0) > 0;
  if (!keepAny) await sweepWorkspaces(join(options.workdir, "jobs"), () => false);
  if (leftovers) {
    log(`ended ${leftovers} command process groups left by an earlier run of this worker`);
  }
  const plugins = new Map<string, Plugin>(BUILTIN_PLUGINS.map((p) => [p.name, p]));
  const cacheMaxBytes = options.cacheMaxBytes ?? DEFAULT_CACHE_MAX_BYTES;
  const caches = cacheMaxBytes > 0
    ? new CacheStore(join(options.workdir, "cache", "jobs"), cacheMaxBytes)
    : undefined;
  for (const plugin of options.pluginsDir ? await loadPluginFiles(options.pluginsDir) : []) {
    if (plugins.has(plugin.name)) {
      throw new TypeError(
        `plugin '${plugin.name}' in ${options.pluginsDir} is declared twice or built in`,
      );
    }
    plugins.set(plugin.name, plugin);
  }

  const runs = new Map<string, JobRun>();
  const waiting: { job: DispatchedJob; attempt: number }[] = [];
  /** Every run not finished yet, superseded ones too: their workspaces are in use. */
  const live = new Set<JobRun>();
  /** Lease tokens of the attempts this worker holds, by run key: its proof when it reconnects. */
  const leases = new Map<string, string>();
  let draining = false;
  let started = 0;
  const results: Record<string, number> = {};
  const finished = Promise.withResolvers<number>();

  let client: Deno.HttpClient | undefined;
  if (options.ca) {
    let pem: string;
    try {
      pem = await Deno.readTextFile(options.ca);
    } catch (error) {
      throw new TypeError(`--ca ${options.ca}: ${(error as Error).message}`);
    }
    client = Deno.createHttpClient({ caCerts: [pem] });
  }
  const artifacts = httpArtifactSender({ queen: options.connect, token: options.token, client });
  const connection: QueenConnection = new QueenConnection({
    url: options.connect,
    token: options.token,
    client,
    log,
    onOpen: () => {},
    // Until the queen has the next connection's drone:info, job events wait in the outbox.
    onClose: () => {
      ready = false;
      // The queen gives jobs waiting here back to its queue when the connection drops: they
      // must not start here too. (Started ones keep running and are claimed on reconnect.)
      for (const { job, attempt } of waiting.splice(0)) {
        outbox.drop(job.job_id, attempt);
        leases.delete(runKey(job.job_id, attempt));
      }
      next();
    },
    onFrame: (frame) => onFrame(frame),
  });
  const outbox = new Outbox((_event, line) => ready && connection.sendText(line), {
    spoolDir: join(options.workdir, "spool"),
  });
  // Job events wait until the queen has this connection's drone:info.
  let ready = false;

  const info = (): DroneInfo => ({
    event: "drone:info",
    name: options.name,
    version: VERSION,
    protocol: PROTOCOL_VERSION,
    speed: options.speed,
    capacity: options.capacity,
    plugins: [...plugins.keys()],
    labels: options.labels,
    running: claims(),
    draining,
    ...(options.maxJobs
      ? { accepts: Math.max(0, options.maxJobs - started - waiting.length) }
      : {}),
  });

  /** The attempts to resume, each with its lease token; leases of forgotten ones are dropped. */
  function claims(): DroneInfo["running"] {
    const held = outbox.running();
    const keys = new Set(held.map((r) => runKey(r.id, r.attempt)));
    for (const key of leases.keys()) {
      const inUse = keys.has(key) || runs.has(key) ||
        waiting.some((w) => runKey(w.job.job_id, w.attempt) === key);
      if (!inUse) leases.delete(key);
    }
    return held.map((r) => {
      const lease = leases.get(runKey(r.id, r.attempt));
      return lease ? { ...r, lease } : r;
    });
  }

  function onFrame(frame: QueenFrame): void {
    switch (frame.event) {
      case "drone:query-info":
        connection.send(info());
        ready = true;
        outbox.resend();
        return;
      case "queue:new":
        leases.set(runKey(frame.job.job_id, frame.attempt), frame.lease);
        return accept(frame.job, frame.attempt);
      case "queue:take":
        return giveBack(frame.id, frame.attempt, true);
      case "job:cancel":
        return cancel(frame.id, frame.attempt, frame.reason);
      case "job:ack":
        outbox.ack(frame.id, frame.attempt, frame.seq);
        return;
      case "ping":
        connection.send({ event: "pong", t: frame.t });
        return;
      case "drone:drain":
        void drain();
        return;
      case "error":
        log(`the queen says: ${frame.message}`);
        return;
    }
  }

  function accept(job: DispatchedJob, attempt: number): void {
    const key = runKey(job.job_id, attempt);
    if (runs.has(key) || waiting.some((w) => runKey(w.job.job_id, w.attempt) === key)) return;
    // An older attempt of the same job is superseded by this one.
    for (const run of runs.values()) {
      if (run.id === job.job_id && run.attempt < attempt) supersede(run);
    }
    if (runs.size < options.capacity) begin(job, attempt);
    else {
      waiting.push({ job, attempt });
      outbox.push(job.job_id, attempt, { event: "job:queued", timestamp: Date.now() });
    }
    // An ephemeral worker says it is draining as soon as it holds its last job, not once that
    // job is done: by then the queen may already have sent it another.
    if (limitReached() && !draining) void drain();
  }

  /**
   * Gives a job that waits here, not started, back to the queen (asked with `queue:take`, or
   * unasked when the worker stops); answers whether it was still waiting.
   */
  function giveBack(id: string, attempt: number, asked: boolean): void {
    const index = waiting.findIndex((w) => w.job.job_id === id && w.attempt === attempt);
    if (index >= 0) {
      waiting.splice(index, 1);
      outbox.drop(id, attempt);
      leases.delete(runKey(id, attempt));
    }
    if (index >= 0 || asked) {
      connection.send({ event: "queue:taken", id, attempt, taken: index >= 0 });
    }
  }

  /** Whether an ephemeral worker (`maxJobs`) holds or has run as many jobs as it may. */
  function limitReached(): boolean {
    return !!options.maxJobs && started + waiting.length >= options.maxJobs;
  }

  function begin(job: DispatchedJob, attempt: number): void {
    started++;
    const run = new JobRun({
      job,
      attempt,
      workdir: options.workdir,
      plugins,
      isolation: options.isolation,
      sandbox,
      graceMs: options.killGrace * 1000,
      outputLimit: options.outputLimit ?? 64 * 1024 * 1024,
      // While connected, output is read as fast as the queen acknowledges it; while away, it
      // spools to disk so the job never waits on the network.
      ready: () => (ready ? outbox.whenRoom(job.job_id, attempt, ROOM_WAIT_MS) : Promise.resolve()),
      keepWorkspace: (options.keepWorkspaces ?? 0) > 0,
      envPass: passedEnv(options.envPass ?? []),
      caches,
      artifacts,
      emit: (body) => {
        if (runs.get(runKey(job.job_id, attempt)) === run) outbox.push(job.job_id, attempt, body);
      },
    });
    runs.set(runKey(job.job_id, attempt), run);
    live.add(run);
    log(`job ${job.job_id} attempt ${attempt}: started`);
    run.run().then((result) => {
      results[result] = (results[result] ?? 0) + 1;
      log(`job ${job.job_id} attempt ${attempt}: ${result}`);
    })
      .catch((error) => log(`job ${job.job_id}: ${(error as Error).message}`))
      .finally(() => {
        // A run superseded by a new one under the same key must not remove that one.
        if (runs.get(runKey(job.job_id, attempt)) === run) runs.delete(runKey(job.job_id, attempt));
        live.delete(run);
        keepWorkspace(join(options.workdir, "jobs", `${job.job_id}.${attempt}`));
        // Workspaces no run uses any more (a superseded run's, one a failed removal left) go.
        if (!keepAny) {
          const inUse = (name: string) => [...live].some((r) => `${r.id}.${r.attempt}` === name);
          void sweepWorkspaces(join(options.workdir, "jobs"), inUse);
        }
        next();
      });
  }

  /** Keeps the newest `keepWorkspaces` workspaces; older ones are removed. */
  const kept: string[] = [];
  function keepWorkspace(path: string): void {
    const keep = options.keepWorkspaces ?? 0;
    if (keep <= 0) return;
    kept.push(path);
    for (const old of kept.splice(0, Math.max(0, kept.length - keep))) {
      void Deno.remove(old, { recursive: true }).catch(() => {});
    }
  }

  /** Starts waiting jobs into free slots; stops the worker when it is done with its work. */
  function next(): void {
    while (runs.size < options.capacity && waiting.length > 0) {
      const { job, attempt } = waiting.shift()!;
      begin(job, attempt);
    }
    if (limitReached() && !draining) void drain();
    if (draining && runs.size === 0 && waiting.length === 0) void finish(0);
  }

  function supersede(run: JobRun): void {
    runs.delete(runKey(run.id, run.attempt));
    leases.delete(runKey(run.id, run.attempt));
    outbox.drop(run.id, run.attempt);
    run.stop("cancelled");
  }

  function cancel(id: string, attempt: number, reason: "cancelled" | "timeout" | "superseded") {
    const run = runs.get(runKey(id, attempt));
    if (run) {
      if (reason === "superseded") supersede(run);
      else run.stop(reason === "timeout" ? "timeout" : "cancelled");
      return;
    }
    const queued = waiting.findIndex((w) =>
      runKey(w.job.job_id, w.attempt) === runKey(id, attempt)
    );
    if (queued >= 0) {
      waiting.splice(queued, 1);
      if (reason === "superseded") {
        outbox.drop(id, attempt);
        leases.delete(runKey(id, attempt));
      } else {
        outbox.push(id, attempt, {
          event: "job:done",
          timestamp: Date.now(),
          result: reason === "timeout" ? "timeout" : "cancelled",
          error: "cancelled while waiting in the worker's queue",
        });
      }
    } else if (reason === "superseded") {
      outbox.drop(id, attempt);
    }
  }

  let finishing = false;
  let impatient = false;
  async function finish(code: number): Promise<void> {
    if (finishing) return;
    finishing = true;
    let acked = await outbox.drained(FINAL_ACK_TIMEOUT_MS);
    if (!acked && !impatient) {
      log(
        `waiting up to ${DRAIN_ACK_TIMEOUT_MS / 60_000} min for the queen to take ` +
          `${outbox.pending()} events (signal again to stop now)`,
      );
      acked = await Promise.race([
        outbox.drained(DRAIN_ACK_TIMEOUT_MS - FINAL_ACK_TIMEOUT_MS),
        hurry.promise.then(() => false),
      ]);
    }
    if (!acked) log(`${outbox.pending()} events were not acknowledged before stopping`);
    connection.close();
    finished.resolve(acked ? code : 1);
  }

  async function drain(): Promise<number> {
    if (!draining) {
      draining = true;
      log("draining: taking no new jobs; running jobs finish first");
      connection.send(info());
      next();
    }
    return await finished.promise;
  }

  const hurry = Promise.withResolvers<void>();
  async function stop(): Promise<number> {
    draining = true;
    impatient = true;
    hurry.resolve();
    // Jobs that never started here go back to the queen's queue, uncharged, to run elsewhere.
    for (const { job, attempt } of [...waiting]) giveBack(job.job_id, attempt, false);
    for (const run of runs.values()) run.stop("cancelled");
    next();
    return await finished.promise;
  }

  connection.stopped.catch((error) => {
    log(error instanceof QueenRefusedError ? error.message : String(error));
    for (const run of runs.values()) run.stop("cancelled");
    finished.resolve(1);
  });
  connection.start();
  const stats = (): WorkerStats => ({
    name: options.name,
    connected: connection.open && ready,
    draining,
    capacity: options.capacity,
    running: runs.size,
    waiting: waiting.length,
    unacked: outbox.pending(),
    finished: { ...results },
  });
  return { drain, stop, finished: finished.promise, stats };
}

/**
 * Removes every workspace under `jobsDir` (named `<job id>.<attempt>`) no run uses: those of
 * attempts killed with the worker, or superseded. `inUse` is asked at each entry, so a run that
 * begins meanwhile keeps its workspace.
 */
async function sweepWorkspaces(jobsDir: string, inUse: (name: string) => boolean): Promise<void> {
  try {
    for await (const entry of Deno.readDir(jobsDir)) {
      if (inUse(entry.name)) continue;
      await Deno.remove(join(jobsDir, entry.name), { recursive: true }).catch(() => {});
    }
  } catch {
    // No workspaces yet.
  }
}
