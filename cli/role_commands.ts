/**
 * `strider queen` and `strider worker`: parse their flags and start the role until a signal.
 */
import { hostname } from "node:os";
import { EnvNameSchema, NameSchema } from "../protocol/mod.ts";
import { startQueen, StartupError } from "../queen/mod.ts";
import {
  DEFAULT_MAX_MEMORY_MIB,
  DEFAULT_MAX_PROCS,
  serveHealth,
  startWorker,
} from "../worker/mod.ts";
import type { Isolation } from "../worker/mod.ts";
import { int, list, parseFlags, positive, required, str, usage, UsageError } from "./options.ts";
import type { Flags, Values } from "./options.ts";
import { makeLogger } from "./logger.ts";
import { shownUrl } from "./shown_url.ts";
import type { LogFormat } from "./logger.ts";
import type { Output } from "./client_commands.ts";

export { StartupError };

/**
 * The worker reports a bad setting (`--ca`, `--isolation`, a plugin file) as a `TypeError` while
 * it starts; only those, from its start alone, become a `StartupError` (exit 1 with the message).
 */
function workerStartupProblem(error: unknown): never {
  throw error instanceof TypeError ? new StartupError(error.message) : error;
}

export const QUEEN_FLAGS: Flags = {
  port: {
    type: "string",
    value: "N",
    help: "port to listen on (0: any free port)",
    default: "3000",
  },
  host: { type: "string", value: "ADDR", help: "address to listen on", default: "127.0.0.1" },
  data: {
    type: "string",
    value: "DIR",
    help: "data folder (store, secret key, tokens); made 0700, its files 0600",
    default: "./strider-data",
  },
  database: {
    type: "string",
    value: "URL",
    help: "postgres://user@host:port/db: keep jobs there, shared with the other queens " +
      "(password: PGPASSWORD)",
  },
  "database-timeout": {
    type: "string",
    value: "S",
    help: "with --database: seconds a statement may take; past it the request fails (503) " +
      "instead of waiting",
    default: "30",
  },
  "peer-url": {
    type: "string",
    value: "URL",
    help: "with --database: this queen's address as recorded in the database (default: its own)",
  },
  "worker-token": {
    type: "string",
    value: "T",
    help: "token workers must present (else generated into DIR/worker-token)",
  },
  "api-token": {
    type: "string",
    value: "T",
    help: "token for API writes (else generated into DIR/api-token)",
  },
  lease: {
    type: "string",
    value: "S",
    help: "seconds a silent drone keeps its jobs",
    default: "30",
  },
  "max-attempts": {
    type: "string",
    value: "N",
    help: "attempts before a job is lost",
    default: "3",
  },
  "queue-timeout": {
    type: "string",
    value: "S",
    help: "end a queued job no connected drone can run after S seconds (errored; default: never)",
  },
  "default-timeout": {
    type: "string",
    value: "S",
    help: "seconds a job may run when it sets no timeout (0: no limit)",
    default: "3600",
  },
  "max-log-mib": { type: "string", value: "MIB", help: "log kept per job, in MiB", default: "64" },
  "public-url": {
    type: "string",
    value: "URL",
    help: "the queen's address as people reach it, for links in commit statuses",
  },
  "max-artifact-mib": {
    type: "string",
    value: "MIB",
    help: "artifacts kept per job, in MiB",
    default: "256",
  },
  "keep-jobs": { type: "string", value: "N", help: "keep only the newest N finished jobs" },
  "keep-days": { type: "string", value: "D", help: "keep finished jobs for D days" },
  "tokens-file": {
    type: "string",
    value: "FILE",
    help: "KIND TOKEN lines (worker, api, api-read); reloaded on SIGHUP",
  },
  "allow-repo": {
    type: "string",
    value: "PATTERN",
    help: "repository URLs jobs may use, * as wildcard (repeatable)",
    multiple: true,
  },
  "tls-cert": { type: "string", value: "FILE", help: "PEM certificate: serve HTTPS/WSS" },
  "tls-key": { type: "string", value: "FILE", help: "PEM private key for --tls-cert" },
  private: {
    type: "boolean",
    help: "viewing the dashboard and reading the API need the API token too",
  },
  "webhook-secret": {
    type: "string",
    value: "S",
    help: "secret that verifies forge webhooks at /hooks/github|gitlab|gitea",
  },
  "rotate-secret-key": {
    type: "boolean",
    env: false,
    help: "make a new DIR/secret-key and re-encrypt every stored secret with it, then serve " +
      "(the key is STRIDER_SECRET_KEY when set: 32 random bytes in base64; with --database, " +
      "the old key from --old-secret-key, STRIDER_SECRET_KEY_OLD or DIR/secret-key)",
  },
  "old-secret-key": {
    type: "string",
    value: "FILE",
    env: false,
    help: "a file holding the key secrets were sealed with until now, for the start that " +
      "re-seals them (or STRIDER_SECRET_KEY_OLD)",
  },
  "log-format": { type: "string", value: "F", help: "text or json", default: "text" },
};

export const WORKER_FLAGS: Flags = {
  connect: {
    type: "string",
    value: "URL",
    help: "the queen's URL, e.g. http://queen:3000; several queens of one cluster: URL,URL,...",
  },
  token: { type: "string", value: "T", help: "worker token", env: "STRIDER_WORKER_TOKEN" },
  name: { type: "string", value: "N", help: "name shown for this worker (default: host name)" },
  capacity: { type: "string", value: "N", help: "jobs run at once", default: "2" },
  speed: {
    type: "string",
    value: "N",
    help: "relative speed; faster drones get jobs first",
    default: "1",
  },
  workdir: {
    type: "string",
    value: "DIR",
    help: "where job workspaces live",
    default: "./strider-work",
  },
  labels: { type: "string", value: "a,b", help: "labels jobs can ask for" },
  isolation: { type: "string", value: "MODE", help: "none or bwrap", default: "none" },
  "run-as": {
    type: "string",
    value: "USER",
    help: "with bwrap and a root worker: the user jobs run as (default nobody)",
  },
  "max-procs": {
    type: "string",
    value: "N",
    help: "with bwrap: processes and threads the job's user may have",
    default: String(DEFAULT_MAX_PROCS),
  },
  "max-memory": {
    type: "string",
    value: "MIB",
    help: "with bwrap: MiB of data memory each job process may use",
    default: String(DEFAULT_MAX_MEMORY_MIB),
  },
  "kill-grace": {
    type: "string",
    value: "S",
    help: "seconds from SIGTERM to SIGKILL",
    default: "10",
  },
  "max-jobs": { type: "string", value: "N", help: "exit after N jobs (0: never)", default: "0" },
  "output-limit": {
    type: "string",
    value: "MIB",
    help: "MiB of output one job may send",
    default: "64",
  },
  "keep-workspaces": {
    type: "string",
    value: "N",
    help: "keep the last N job workspaces for inspection (0: remove each, and leftovers at start)",
    default: "0",
  },
  "plugins-dir": { type: "string", value: "DIR", help: "folder of plugin files (*.json) to load" },
  ca: { type: "string", value: "FILE", help: "PEM CA certificate to trust for an https queen" },
  "health-addr": {
    type: "string",
    value: "HOST:PORT",
    help: "serve /healthz and /metrics for this worker",
  },
  "log-format": { type: "string", value: "F", help: "text or json", default: "text" },
  "cache-max-mib": {
    type: "string",
    value: "MIB",
    help: "MiB all job caches may take (least recently used go first; 0: no caches)",
    default: "2048",
  },
  "env-pass": {
    type: "string",
    value: "NAME",
    help: "pass this variable of the worker's environment to jobs (repeatable)",
    multiple: true,
  },
};

/** `HOST:PORT` (or `:PORT` for 127.0.0.1), or a `UsageError` saying what is wrong. */
export function parseHostPort(text: string): { hostname: string; port: number } {
  const match = text.match(/^(.*):(\d{1,5})$/);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw new UsageError(`--health-addr must be HOST:PORT, e.g. 127.0.0.1:9090, not '${text}'`);
  }
  return { hostname: match[1].replace(/^\[|\]$/g, "") || "127.0.0.1", port };
}

/** `--public-url`, checked: an http(s) address without credentials. */
function publicUrl(values: Values): string | undefined {
  const text = str(values, "public-url");
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `--public-url must be a URL such as https://ci.example.com, not '${shownUrl(text)}'`,
    );
  }
  if (!/^https?:$/.test(url.protocol) || url.username || url.password) {
    throw new UsageError(
      `--public-url must be an http(s) URL without credentials, not '${shownUrl(text)}'`,
    );
  }
  return text.replace(/\/+$/, "");
}

/** `--peer-url`, checked: where other queens reach this one. */
function peerUrl(values: Values): string | undefined {
  const text = str(values, "peer-url");
  if (text === undefined) return undefined;
  if (!/^https?:\/\/[^\s/]+\/?$/.test(text) || shownUrl(text) !== text) {
    throw new UsageError(
      "--peer-url must be http(s)://HOST:PORT without a user or password, e.g. " +
        `http://10.0.0.11:3000, not '${shownUrl(text)}'`,
    );
  }
  return text.replace(/\/+$/, "");
}

/** `--database`, checked: a postgres:// URL. */
function postgresUrl(values: Values): string | undefined {
  const text = str(values, "database");
  if (text === undefined) return undefined;
  if (!/^postgres(ql)?:\/\/[^\s]+$/.test(text)) {
    throw new UsageError(
      "--database must be a URL such as postgres://strider@db:5432/strider",
    );
  }
  return text;
}

function logFormat(values: Values): LogFormat {
  const format = required(values, "log-format");
  if (format !== "text" && format !== "json") {
    throw new UsageError(`--log-format must be text or json, not '${format}'`);
  }
  return format;
}

/** Resolves on the first SIGINT or SIGTERM; calls `again` on each one after it. */
function onSignals(again: () => void): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  let count = 0;
  const handler = () => (count++ === 0 ? resolve() : again());
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, handler);
  return promise;
}

export async function queen(args: string[], output: Output): Promise<number> {
  const { values } = parseFlags(args, QUEEN_FLAGS);
  if (values.help) {
    output.out(usage("strider queen [flags]", QUEEN_FLAGS) + "\n");
    return 0;
  }
  const running = await startQueen({
    log: makeLogger("queen", logFormat(values)),
    port: int(values, "port", 0, 65535)!,
    host: required(values, "host"),
    data: required(values, "data"),
    database: postgresUrl(values),
    databaseTimeout: int(values, "database-timeout", 1, 3600),
    peerUrl: peerUrl(values),
    workerTokens: list(values, "worker-token"),
    apiTokens: list(values, "api-token"),
    lease: positive(values, "lease"),
    maxAttempts: int(values, "max-attempts", 1, 100),
    queueTimeout: int(values, "queue-timeout", 1, 30 * 24 * 3600),
    defaultTimeout: int(values, "default-timeout", 0, 7 * 24 * 3600),
    maxLogBytes: int(values, "max-log-mib", 1, 1024 * 1024)! * 1024 * 1024,
    maxArtifactBytes: int(values, "max-artifact-mib", 0, 1024 * 1024)! * 1024 * 1024,
    publicUrl: publicUrl(values),
    keepJobs: int(values, "keep-jobs", 0, 100_000_000),
    keepDays: positive(values, "keep-days"),
    webhookSecret: str(values, "webhook-secret"),
    private: values.private === true,
    allowRepo: list(values, "allow-repo"),
    tokensFile: str(values, "tokens-file"),
    tlsCert: str(values, "tls-cert"),
    tlsKey: str(values, "tls-key"),
    // Keys are read from the environment only: a command line is visible to every local user.
    secretKey: Deno.env.get("STRIDER_SECRET_KEY") || undefined,
    oldSecretKey: Deno.env.get("STRIDER_SECRET_KEY_OLD") || undefined,
    oldSecretKeyFile: str(values, "old-secret-key"),
    rotateSecretKey: values["rotate-secret-key"] === true,
  });
  Deno.addSignalListener("SIGHUP", () => void running.reloadTokens());
  // Tests and wrappers read the chosen port from this line when they ask for port 0.
  output.out(`strider queen listening on ${running.url}\n`);
  await Promise.race([onSignals(() => Deno.exit(130)), running.finished]);
  await running.close();
  return 0;
}

export async function worker(args: string[], output: Output): Promise<number> {
  const { values } = parseFlags(args, WORKER_FLAGS);
  if (values.help) {
    output.out(usage("strider worker --connect URL [flags]", WORKER_FLAGS) + "\n");
    return 0;
  }
  const connect = required(values, "connect");
  for (const url of connect.split(",")) {
    if (!/^https?:\/\/\S+$/.test(url.trim())) {
      throw new UsageError(
        `--connect must be an http:// or https:// URL, not '${shownUrl(url.trim())}'`,
      );
    }
    // The worker logs where it connects: a password there would be in every log line of it.
    if (shownUrl(url.trim()) !== url.trim()) {
      throw new UsageError(
        `--connect must not carry credentials ('${shownUrl(url.trim())}'): the worker sends ` +
          "its token (--token or STRIDER_WORKER_TOKEN) in a header",
      );
    }
  }
  const token = str(values, "token");
  if (!token) throw new UsageError("--token (or STRIDER_WORKER_TOKEN) is required");
  const isolation = required(values, "isolation");
  if (isolation !== "none" && isolation !== "bwrap") {
    throw new UsageError(`--isolation must be none or bwrap, not '${isolation}'`);
  }
  const capacity = int(values, "capacity", 1, 10_000)!;
  const speed = positive(values, "speed")!;
  const killGrace = int(values, "kill-grace", 0, 3600)!;
  const maxJobs = int(values, "max-jobs", 0, 1_000_000)!;
  const name = str(values, "name") ?? hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
  if (!NameSchema.safeParse(name).success) {
    throw new UsageError(`--name must be letters, digits, '.', '_' or '-', not '${name}'`);
  }
  const labels = list(values, "labels");
  const badLabel = labels.find((l) => !NameSchema.safeParse(l).success);
  if (badLabel) throw new UsageError(`--labels: '${badLabel}' is not a valid label`);
  const envPass = list(values, "env-pass");
  const badName = envPass.find((n) => !EnvNameSchema.safeParse(n).success);
  if (badName) throw new UsageError(`--env-pass: '${badName}' is not a variable name`);
  // The worker's own settings (its token above all) never reach a job.
  const own = envPass.find((n) => n.startsWith("STRIDER_"));
  if (own) throw new UsageError(`--env-pass: '${own}' is the worker's own setting; not passed`);
  const running = await startWorker({
    envPass,
    cacheMaxBytes: int(values, "cache-max-mib", 0, 1024 * 1024 * 1024)! * 1024 * 1024,
    log: makeLogger(`worker ${name}`, logFormat(values)),
    connect,
    token,
    name,
    capacity,
    speed,
    workdir: required(values, "workdir"),
    labels,
    isolation: isolation as Isolation,
    runAs: str(values, "run-as"),
    maxProcs: int(values, "max-procs", 16, 1_000_000)!,
    maxMemoryMib: int(values, "max-memory", 64, 16 * 1024 * 1024)!,
    killGrace,
    maxJobs,
    pluginsDir: str(values, "plugins-dir"),
    ca: str(values, "ca"),
    outputLimit: int(values, "output-limit", 1, 1024 * 1024)! * 1024 * 1024,
    keepWorkspaces: int(values, "keep-workspaces", 0, 10_000)!,
  }).catch(workerStartupProblem);
  const healthAddr = str(values, "health-addr");
  const stopHealth = new AbortController();
  if (healthAddr) {
    const at = await serveHealth(parseHostPort(healthAddr), running.stats, stopHealth.signal);
    output.err(`worker ${name}: health and metrics on http://${at.hostname}:${at.port}\n`);
  }
  void running.finished.then(() => stopHealth.abort());
  // First signal: drain (running jobs finish). Second: cancel them; cleanup still runs.
  void onSignals(() => void running.stop()).then(() => running.drain());
  return await running.finished;
}
