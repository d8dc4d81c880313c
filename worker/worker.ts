/**
 * The worker role: connects out to the queen, says what it can do, runs the jobs it is given
 * (up to its capacity, the rest waiting in its own queue), and streams their events back.
 */
import { join } from "node:path";
import {
  encodeFrame,
  encodeOutputFrame,
  isOutputEvent,
  OUTPUT_FRAME_VERSION,
  PROTOCOL_VERSION,
  VERSION,
} from "../protocol/mod.ts";
import { QueenConnection, QueenRefusedError } from "./connection.ts";
import { httpArtifactSender } from "./artifacts.ts";
import { CacheStore } from "./cache_store.ts";
import { passedEnv } from "./job_env.ts";
import { JobRun } from "./job_run.ts";
import { Outbox } from "./outbox.ts";
import { WorkerCore } from "./worker_core.ts";
import { loadPluginFiles } from "./plugin_files.ts";
import { killLeftovers } from "./process_ledger.ts";
import { BUILTIN_PLUGINS } from "./plugins.ts";
import type { Plugin } from "./plugins.ts";
import { checkIsolation, prepareWorkdir, sandboxSettings } from "./sandbox.ts";
import type { Isolation } from "./sandbox.ts";

/** Settings of `strider worker`. */
export interface WorkerOptions {
  /** The queen's URL, or several queens of one cluster separated by commas. */
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
  // `--connect` may list several queens of one cluster, comma-separated.
  const [first, ...fallbacks] = options.connect.split(",").map((url) => url.trim());
  const artifacts = httpArtifactSender({
    queen: () => connection.url,
    token: options.token,
    lease: (job, attempt) => core.lease(job, attempt),
    client,
  });
  const connection: QueenConnection = new QueenConnection({
    url: first,
    fallbacks,
    token: options.token,
    client,
    log,
    onOpen: () => {},
    onClose: () => core.disconnected(),
    onFrame: (frame) => core.receive(frame),
  });
  // Until the queen has this connection's drone:info, job events wait in the outbox.
  // Output goes in binary frames to a queen that reads them (protocol/output_frame.ts).
  const outbox = new Outbox((event, line) => {
    if (!core.ready) return false;
    if (core.binaryOutput && isOutputEvent(event)) {
      return connection.sendBytes(encodeOutputFrame(event));
    }
    return connection.sendText(line ?? encodeFrame(event));
  }, {
    spoolDir: join(options.workdir, "spool"),
  });
  const core: WorkerCore = new WorkerCore({
    capacity: options.capacity,
    maxJobs: options.maxJobs,
    identity: {
      name: options.name,
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      binary_output: OUTPUT_FRAME_VERSION,
      speed: options.speed,
      plugins: [...plugins.keys()],
      labels: options.labels,
    },
    events: outbox,
    send: (frame) => connection.send(frame),
    createRun: (job, attempt, emit) =>
      new JobRun({
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
        ready: () =>
          core.ready ? outbox.whenRoom(job.job_id, attempt, ROOM_WAIT_MS) : Promise.resolve(),
        keepWorkspace: keepAny,
        envPass: passedEnv(options.envPass ?? []),
        caches,
        artifacts,
        emit,
      }),
    runEnded: (run) => {
      keepWorkspace(join(options.workdir, "jobs", `${run.id}.${run.attempt}`));
      // Workspaces no run uses any more (a superseded run's, one a failed removal left) go.
      if (!keepAny) void sweepWorkspaces(join(options.workdir, "jobs"), (n) => core.inUse(n));
    },
    idle: () => void finish(0),
    log,
  });

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
    core.drain();
    return await finished.promise;
  }

  const hurry = Promise.withResolvers<void>();
  async function stop(): Promise<number> {
    impatient = true;
    hurry.resolve();
    core.stop();
    return await finished.promise;
  }

  connection.stopped.catch((error) => {
    log(error instanceof QueenRefusedError ? error.message : String(error));
    core.abort();
    finished.resolve(1);
  });
  connection.start();
  const stats = (): WorkerStats => ({
    name: options.name,
    connected: connection.open && core.ready,
    draining: core.draining,
    capacity: options.capacity,
    running: core.running,
    waiting: core.waiting,
    unacked: outbox.pending(),
    finished: core.results(),
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
