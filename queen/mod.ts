/**
 * The queen role: `startQueen` serves the API, the worker protocol and the dashboard.
 * @module
 */
import { queenMemory } from "./memory_return.ts";
import { join } from "node:path";
import { secureDataDir } from "./data_dir.ts";
import { openStores } from "./stores.ts";
import { StatusReporter } from "./forge_status/reporter.ts";
import { QueenCore } from "./queen.ts";
import { Builds } from "./builds/builds.ts";
import { attachBuilds } from "./builds/registry.ts";
import { MAX_REPORT_BYTES } from "./builds/timings.ts";
import type { Artifacts } from "./artifacts/store.ts";
import { createApp } from "./server.ts";
import { applyDroneAction } from "./fleet.ts";
import { fillTokenSet, parseTokensFile, tokenFromDataDir } from "./tokens.ts";
import type { TokenSet } from "./tokens.ts";
import { StartupError } from "./errors.ts";
import { PostgresStore } from "./postgres/store.ts";
import { RemoteFeed } from "./remote_feed.ts";

export { QueenCore } from "./queen.ts";
export { StartupError } from "./errors.ts";

/** How long a queen that lost its lock waits for its stores to close before it exits. */
const LOST_CLOSE_MS = 10_000;

/** How often finished jobs beyond the retention are removed. */
const RETENTION_EVERY_MS = 10 * 60_000;

/** Settings of `strider queen`. */
export interface QueenOptions {
  port: number;
  host: string;
  /** Folder of the store, the secret key and generated tokens (made 0700, its files 0600). */
  data: string;
  /**
   * A `postgres://` URL: jobs, events and logs live there instead of `<data>/strider.db`. Every
   * queen sharing it serves and schedules; the survivors adopt the jobs of one that stops (see
   * docs/ARCHITECTURE.md, "Several queens").
   */
  database?: string;
  /** With `database`: seconds a statement may take before it fails (default 30). */
  databaseTimeout?: number;
  /** With `database`: the address other queens reach this one at (default its own). */
  peerUrl?: string;
  /** The key sealing secrets at rest, 32 bytes in base64; default: `<data>/secret-key`. */
  secretKey?: string;
  /** The previous `secretKey`, for the one start that re-seals everything with the new one. */
  oldSecretKey?: string;
  /** A file holding the previous key (`--old-secret-key`), the same way. */
  oldSecretKeyFile?: string;
  /** Make a new `<data>/secret-key` and re-seal everything with it before serving. */
  rotateSecretKey?: boolean;
  /** Accepted worker tokens; when empty, one is generated into `<data>/worker-token`. */
  workerTokens?: string[];
  /** A tokens file (`KIND TOKEN` lines), read at start and on `reloadTokens()`. */
  tokensFile?: string;
  /** Accepted API tokens; when empty, one is generated into `<data>/api-token`. */
  apiTokens?: string[];
  /** Seconds a silent or disconnected drone keeps its jobs. */
  lease?: number;
  maxAttempts?: number;
  /** Seconds a queued job no connected drone can run waits before it ends `errored`; 0: ever. */
  queueTimeout?: number;
  /** Seconds a job may run when its spec sets no `timeout`; 0 for no limit. */
  defaultTimeout?: number;
  /** Bytes of log kept per job (default 64 MiB). */
  maxLogBytes?: number;
  /** Keep only the newest N finished jobs. */
  keepJobs?: number;
  /** Keep finished jobs for D days. */
  keepDays?: number;
  /** Viewing (dashboard, browser socket, API reads) needs the API token too. */
  private?: boolean;
  /** Repository URL patterns jobs may use (`*` matches anything); empty: any. */
  allowRepo?: string[];
  /** PEM files: with both, the queen serves HTTPS and WSS only. */
  tlsCert?: string;
  tlsKey?: string;
  /** Verifies webhooks (`/hooks/...`) of projects without a secret of their own. */
  webhookSecret?: string;
  /** Bytes one job's artifacts may take together (default 256 MiB). */
  maxArtifactBytes?: number;
  /** The queen's address as people reach it, for links in commit statuses (default its own). */
  publicUrl?: string;
  /** Where diagnostics go; defaults to stderr. */
  log?: (message: string) => void;
  signal?: AbortSignal;
}

/** A running queen. */
export interface RunningQueen {
  /** e.g. `http://127.0.0.1:3000` */
  url: string;
  port: number;
  core: QueenCore;
  /** Reads the tokens file again (SIGHUP): added tokens work and removed ones stop at once. */
  reloadTokens(): Promise<void>;
  /** Closes worker sockets with 1001 (going away) so workers reconnect promptly, then stops. */
  close(): Promise<void>;
  finished: Promise<void>;
}

/** Reads a PEM file, or throws a `StartupError` that names the flag and the problem. */
async function readPem(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new StartupError(`${flag} ${path}: ${(error as Error).message}`);
  }
  if (!text.includes("-----BEGIN")) throw new StartupError(`${flag} ${path} is not a PEM file`);
  return text;
}

/** Starts a queen and resolves once it listens. */
export async function startQueen(options: QueenOptions): Promise<RunningQueen> {
  const log = options.log ?? ((message: string) => console.error(`queen: ${message}`));
  // Before anything is written there: tokens, key and database are private from the start.
  secureDataDir(options.data);
  const readFile = async () => {
    if (!options.tokensFile) return { worker: [], api: [], read: [] };
    let text: string;
    try {
      text = await Deno.readTextFile(options.tokensFile);
    } catch (error) {
      throw new StartupError(`--tokens-file ${options.tokensFile}: ${(error as Error).message}`);
    }
    return parseTokensFile(text);
  };
  const file = await readFile();
  // A queen is never open: a kind of token given nowhere is generated into the data folder.
  const flags = {
    worker: options.workerTokens?.length || file.worker.length
      ? options.workerTokens ?? []
      : [await tokenFromDataDir(options.data, "worker-token")],
    api: options.apiTokens?.length || file.api.length
      ? options.apiTokens ?? []
      : [await tokenFromDataDir(options.data, "api-token")],
  };
  if (!options.workerTokens?.length && !file.worker.length) {
    log(`worker token is in ${join(options.data, "worker-token")}`);
  }
  if (!options.apiTokens?.length && !file.api.length) {
    log(`API token is in ${join(options.data, "api-token")}`);
  }
  const tokens: TokenSet = { worker: [], api: [], view: [] };
  fillTokenSet(tokens, flags, file);

  if (!options.tlsCert !== !options.tlsKey) {
    throw new StartupError("TLS needs both --tls-cert and --tls-key");
  }
  const tls = options.tlsCert && options.tlsKey
    ? {
      cert: await readPem(options.tlsCert, "--tls-cert"),
      key: await readPem(options.tlsKey, "--tls-key"),
    }
    : {};
  const { store, projects, artifacts, statusRows, builds: buildStore, leaseKey, ...lead } =
    await openStores({
      data: options.data,
      leaseMs: (options.lease ?? 30) * 1000,
      queueTimeoutMs: (options.queueTimeout ?? 0) * 1000,
      database: options.database,
      databaseTimeout: options.databaseTimeout,
      keys: {
        secretKey: options.secretKey,
        oldSecretKey: options.oldSecretKey,
        oldSecretKeyFile: options.oldSecretKeyFile,
        rotateSecretKey: options.rotateSecretKey,
      },
      log,
    });
  if (options.rotateSecretKey) {
    const key = options.secretKey ? "STRIDER_SECRET_KEY" : join(options.data, "secret-key");
    log(`secret key rotated: everything is sealed with the new ${key}`);
  }
  const core = await QueenCore.open(store, {
    leaseMs: (options.lease ?? 30) * 1000,
    maxAttempts: options.maxAttempts ?? 3,
    defaultTimeout: options.defaultTimeout ?? 3600,
    maxLogBytes: options.maxLogBytes,
    allowRepo: options.allowRepo,
    queueTimeoutMs: (options.queueTimeout ?? 0) * 1000,
    leaseKey,
    log,
    shared: lead.shared,
  });
  if (lead.bus && store instanceof PostgresStore) {
    // Jobs recorded by other queens reach this queen's followers from the database.
    lead.bus.attach(
      new RemoteFeed(core.hub, store, { local: (id) => core.liveJob(id)?.lastN, log }),
      core.hub,
    );
  }
  const shared = lead.shared;
  const builds = await Builds.open(core, buildStore, {
    log,
    reports: (id) => junitReports(artifacts, id),
    ...(shared ? { cancelElsewhere: (id: string) => shared.cancelBuild(id) } : {}),
  });
  attachBuilds(core, builds);
  /** The status reporter's, once made: a job another queen ran ended, and its build here took it
   * in (the job's queen cannot report it: it does not hold the build). */
  const reportEnded: { to?: (id: string) => void } = {};
  if (lead.shared) {
    // With several queens: the ends of jobs owned elsewhere, and builds of a queen that died.
    lead.shared.onJobEnded = (id) =>
      void builds.jobEnded(id).then((took) => took && reportEnded.to?.(id))
        .catch((error) => log(`build of job ${id}: ${error.message}`));
    lead.shared.onBuildsAdopted = (ids) =>
      void builds.adopt(ids).catch((error) => log(`adopting builds: ${error.message}`));
    lead.shared.onBuildCancel = (id) =>
      void builds.cancel(id).catch((error) => log(`cancelling build ${id}: ${error.message}`));
    // The fleet view and drain/disconnect of this queen's drones asked by another queen.
    core.fleet = lead.shared;
    lead.shared.onDroneAction = (id, action) => {
      const drone = core.drones.get(id);
      if (drone) applyDroneAction(drone, action);
    };
    await lead.shared.start(core);
  }
  const retention = { keepJobs: options.keepJobs, keepDays: options.keepDays };
  const prune = async () => {
    if (retention.keepJobs === undefined && retention.keepDays === undefined) return;
    await store.prune(retention, Date.now()).then(async (removed) => {
      if (removed) log(`retention: removed ${removed} finished jobs`);
      // Then the builds none of whose jobs is left (with their summary statuses and timings).
      const builds = await buildStore.prune();
      if (builds) log(`retention: removed ${builds} finished builds`);
    }).catch((error) => log(`retention: ${(error as Error).message}`));
  };
  // Before serving: a restarted queen never lists what its retention removes. (Every queen of a
  // database prunes; a job two of them pick is deleted once.)
  await prune();
  const pruning = setInterval(prune, RETENTION_EVERY_MS);
  // After a large log, once output stops: one full collection gives the heap back.
  const memory = queenMemory;
  const unfollowOutput = core.hub.followAll(({ data }) => {
    if ("text" in data) memory.output(data.text.length);
  });
  let ownUrl = "";
  const reporter = new StatusReporter({
    rows: statusRows,
    projects,
    queen: {
      getJob: (id) => core.job(id),
      followAll: (fn) => core.hub.followAll(fn),
      buildOfJob: (id) => builds.buildOfJob(id),
      getBuild: (id) => builds.view(id),
      onJobAdded: (listener) => builds.onJobAdded(listener),
    },
    publicUrl: () => options.publicUrl ?? ownUrl,
    log,
  });
  reportEnded.to = (id) => reporter.jobEnded(id);
  const app = createApp(core, tokens, {
    private: options.private,
    projects,
    reporter,
    webhookSecret: options.webhookSecret,
    artifacts,
    maxArtifactBytes: options.maxArtifactBytes,
    log,
  });
  const controller = new AbortController();
  let lostLead: Error | undefined;
  lead.lost?.catch((error) => {
    lostLead = error as Error;
    log(`${lostLead.message}: stopping, so that the other queens adopt its jobs`);
    controller.abort();
  });
  options.signal?.addEventListener("abort", () => controller.abort(), { once: true });
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    ...tls,
    port: options.port,
    hostname: options.host,
    signal: controller.signal,
    onListen: (addr) => resolve(addr as Deno.NetAddr),
  }, app.fetch);
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `${options.tlsCert ? "https" : "http"}://${host}:${addr.port}`;
  ownUrl = url;
  await lead.announce(options.peerUrl ?? url);
  log(`listening on ${url}`);

  const closeAll = async () => {
    await reporter.close();
    await builds.close();
    clearInterval(pruning);
    await lead.shared?.close();
    unfollowOutput();
    memory.stop();
    core.close();
    await lead.bus?.close();
    await core.store.close();
    lead.release();
  };
  const finished = server.finished.finally(() =>
    // A queen that lost its lock stops even if its database does not answer the goodbyes: it
    // has acknowledged nothing it did not commit, and the others adopt its jobs.
    lostLead
      ? Promise.race([closeAll(), new Promise((resolve) => setTimeout(resolve, LOST_CLOSE_MS))])
      : closeAll()
  ).then(() => {
    // Not a clean stop: a service manager restarts the queen, which then stands by.
    if (lostLead) throw new StartupError(lostLead.message);
  });
  return {
    url,
    port: addr.port,
    core,
    finished,
    async reloadTokens() {
      if (!options.tokensFile) return;
      try {
        fillTokenSet(tokens, flags, await readFile());
        for (const drone of core.drones.values()) {
          if (drone.credential && !tokens.worker.includes(drone.credential)) {
            log(`drone ${drone.name}: its worker token was revoked; disconnecting it`);
            drone.close(4001, "worker token revoked");
            core.disconnect(drone);
          }
        }
        log(
          `tokens reloaded from ${options.tokensFile}: ${tokens.worker.length} worker, ` +
            `${tokens.api.length} api, ${tokens.view.length - tokens.api.length} api-read`,
        );
      } catch (error) {
        log(`tokens not reloaded, the old ones stay: ${(error as Error).message}`);
      }
    },
    async close() {
      for (const drone of core.drones.values()) drone.close(1001, "queen shutting down");
      controller.abort();
      await finished;
    },
  };
}

/** The text of a job's JUnit XML reports among its artifacts (up to 20, each up to 4 MiB). */
async function junitReports(artifacts: Artifacts, jobId: string): Promise<string[]> {
  const reports = (await artifacts.list(jobId))
    .filter((a) => a.path.toLowerCase().endsWith(".xml") && a.size <= MAX_REPORT_BYTES)
    .slice(0, 20);
  const texts: string[] = [];
  for (const report of reports) {
    const opened = await artifacts.open(jobId, report.path);
    if (opened) texts.push(await new Response(opened.body).text());
  }
  return texts;
}
