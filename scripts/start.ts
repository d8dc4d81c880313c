/**
 * `deno task start`: a queen and one local worker on this machine, for trying strider out.
 *
 * The two roles run as two child processes of this Deno, each with only its own permissions:
 * the queen gets no `--allow-run`, so it truly cannot spawn processes; only the worker can.
 * Tokens are made (32 random bytes as hex, files of mode 0600) under the data folder when
 * missing, and reused when present; they reach the children by environment only, never on a
 * command line, and are never printed.
 *
 * Settings (environment): STRIDER_PORT (3000), STRIDER_HOST (127.0.0.1), STRIDER_DATA
 * (./strider-data), STRIDER_WORKDIR (./strider-work), STRIDER_START_TIMEOUT (seconds to wait for
 * the queen's /healthz, 30). STRIDER_WORKER_TOKEN / STRIDER_API_TOKEN, when set, are used instead
 * of the token files.
 *
 * SIGINT/SIGTERM are passed on to both children, which get 15 s to stop before SIGKILL. If either
 * child ends on its own, the other is stopped and this script exits non-zero.
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { hex } from "../protocol/hex.ts";
import { QUEEN_V8_FLAGS } from "../cli/runtime_flags.ts";

const QUEEN_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env"];
const WORKER_PERMISSIONS = [...QUEEN_PERMISSIONS, "--allow-run", "--allow-sys"];
const STOP_GRACE_MS = 15_000;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const mainTs = join(root, "main.ts");
const configFile = join(root, "deno.json");

const env = (name: string, fallback: string): string => Deno.env.get(name)?.trim() || fallback;
const port = env("STRIDER_PORT", "3000");
const host = env("STRIDER_HOST", "127.0.0.1");
const dataDir = resolve(env("STRIDER_DATA", "./strider-data"));
const workDir = resolve(env("STRIDER_WORKDIR", "./strider-work"));
const startTimeoutMs = Number(env("STRIDER_START_TIMEOUT", "30")) * 1000;

function log(message: string): void {
  console.error(`start: ${message}`);
}

function fail(message: string): never {
  log(`error: ${message}`);
  Deno.exit(1);
}

if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
  fail(`STRIDER_PORT must be a port number 1-65535, got "${port}"`);
}
if (!(startTimeoutMs > 0)) fail("STRIDER_START_TIMEOUT must be a positive number of seconds");

/** The address to reach a queen listening on `host` from this machine. */
function baseUrl(listenHost: string): string {
  let h = listenHost;
  if (h === "0.0.0.0") h = "127.0.0.1";
  else if (h === "::" || h === "[::]") h = "::1";
  if (h.includes(":") && !h.startsWith("[")) h = `[${h}]`;
  return `http://${h}:${port}`;
}

function randomToken(): string {
  return hex(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * The token kept in `<dataDir>/<name>`: read when the file exists (and is not empty), else made
 * and written with mode 0600. The value is never logged; the path is.
 */
async function ensureTokenFile(name: string): Promise<string> {
  const path = join(dataDir, name);
  try {
    const text = (await Deno.readTextFile(path)).trim();
    if (text) return text;
    log(`${path} is empty; writing a new token`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const token = randomToken();
  await Deno.mkdir(dataDir, { recursive: true });
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600); // whatever the umask was
  log(`wrote a new token to ${path}`);
  return token;
}

async function resolveToken(envName: string, fileName: string): Promise<[string, string]> {
  const fromEnv = Deno.env.get(envName)?.trim();
  if (fromEnv) return [fromEnv, `the ${envName} environment variable`];
  return [await ensureTokenFile(fileName), join(dataDir, fileName)];
}

/** The parent's environment, less `drop`, plus `add`. */
function childEnv(add: Record<string, string>, drop: string[] = []): Record<string, string> {
  const result = Deno.env.toObject();
  for (const name of drop) delete result[name];
  return { ...result, ...add };
}

interface Child {
  name: string;
  process: Deno.ChildProcess;
  /** Resolves with the child's status once it has exited. */
  status: Promise<Deno.CommandStatus>;
  exited: boolean;
}

function spawn(
  name: string,
  permissions: string[],
  args: string[],
  environment: Record<string, string>,
): Child {
  const configArgs = existsSync(configFile) ? ["--config", configFile] : [];
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...configArgs, ...permissions, mainTs, ...args],
    cwd: Deno.cwd(),
    env: environment,
    clearEnv: true,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  });
  const process = command.spawn();
  const child: Child = { name, process, status: process.status, exited: false };
  child.status = process.status.then((status) => {
    child.exited = true;
    return status;
  });
  log(`${name} started (pid ${process.pid}): ${[...permissions, ...args].join(" ")}`);
  return child;
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function describe(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

function kill(child: Child, signal: Deno.Signal): void {
  if (child.exited) return;
  try {
    child.process.kill(signal);
  } catch {
    // already gone, or this signal is not available on this platform
  }
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/**
 * Sends `signal` to each running child, then SIGKILL to any still running after the grace.
 * Returns false when SIGKILL was needed.
 */
async function stop(children: Child[], signal: Deno.Signal): Promise<boolean> {
  const running = children.filter((child) => !child.exited);
  if (running.length === 0) return true;
  for (const child of running) kill(child, signal);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<"timeout">((done) => {
    timer = setTimeout(() => done("timeout"), STOP_GRACE_MS);
  });
  const all = Promise.all(running.map((child) => child.status));
  if (await Promise.race([all, grace]) === "timeout") {
    for (const child of running.filter((c) => !c.exited)) {
      log(`${child.name} did not stop within ${STOP_GRACE_MS / 1000} s; sending SIGKILL`);
      kill(child, "SIGKILL");
    }
    await all;
    return false;
  }
  clearTimeout(timer);
  return true;
}

/** One GET of `url`; true on a 2xx answer. */
async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

// --- main ---

if (!existsSync(mainTs)) fail(`${mainTs} does not exist`);

const [workerToken, workerTokenSource] = await resolveToken("STRIDER_WORKER_TOKEN", "worker-token");
const [apiToken, apiTokenSource] = await resolveToken("STRIDER_API_TOKEN", "api-token");

const children: Child[] = [];
/** The signal that asked us to stop, once one has. */
const state: { stopping: Deno.Signal | null } = { stopping: null };
const stopRequested = Promise.withResolvers<Deno.Signal>();

const signals: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];
for (const signal of signals) {
  Deno.addSignalListener(signal, () => {
    if (state.stopping) {
      log(`${signal} again; still stopping (SIGKILL follows after ${STOP_GRACE_MS / 1000} s)`);
      return;
    }
    state.stopping = signal;
    log(`${signal}: stopping the queen and the worker`);
    stopRequested.resolve(signal);
  });
}

/** Stops everything and exits: 0 after a requested stop with clean exits, else 1. */
async function shutdown(reason: "signal" | "failure"): Promise<never> {
  const forward: Deno.Signal = state.stopping === "SIGINT" ? "SIGINT" : "SIGTERM";
  let clean = await stop(children, forward);
  if (reason === "failure") Deno.exit(1);
  for (const child of children) {
    const status = await child.status;
    // Ending by the signal we forwarded is no failure of the child; a non-zero exit code of its
    // own choosing is, and so is needing SIGKILL (counted above).
    if (!status.success && !status.signal && status.code !== 130 && status.code !== 143) {
      log(`${child.name} exited with ${describe(status)}`);
      clean = false;
    }
  }
  Deno.exit(clean ? 0 : 1);
}

/** Resolves when any child exits, with that child. */
const firstExit = () =>
  Promise.race(children.map((child) => child.status.then(() => child as Child)));

const queenUrl = baseUrl(host);
const queen = spawn(
  "queen",
  [...QUEEN_PERMISSIONS, ...QUEEN_V8_FLAGS],
  ["queen", "--port", port, "--host", host, "--data", dataDir],
  childEnv({ STRIDER_WORKER_TOKEN: workerToken, STRIDER_API_TOKEN: apiToken }),
);
children.push(queen);

// Wait for /healthz, a stop request, the queen's death or the deadline, whichever comes first.
{
  const deadline = Date.now() + startTimeoutMs;
  let ready = false;
  while (!ready) {
    if (state.stopping) await shutdown("signal");
    if (queen.exited) {
      fail(
        `the queen exited (${describe(await queen.status)}) before answering ` +
          `${queenUrl}/healthz`,
      );
    }
    if (Date.now() > deadline) {
      log(`error: the queen did not answer ${queenUrl}/healthz within ${startTimeoutMs / 1000} s`);
      await shutdown("failure");
    }
    ready = await healthy(`${queenUrl}/healthz`);
    if (!ready) await Promise.race([sleep(250), queen.status, stopRequested.promise]);
  }
}
if (state.stopping) await shutdown("signal");

const worker = spawn(
  "worker",
  WORKER_PERMISSIONS,
  ["worker", "--connect", queenUrl, "--workdir", workDir],
  // The worker needs only its own token; the API token stays with the queen.
  childEnv({ STRIDER_WORKER_TOKEN: workerToken }, ["STRIDER_API_TOKEN"]),
);
children.push(worker);

console.log(`strider is running`);
console.log(`  dashboard:    ${queenUrl}/`);
console.log(`  API token:    in ${apiTokenSource}`);
console.log(`  worker token: in ${workerTokenSource}`);
console.log(`  data:         ${dataDir}`);
console.log(`  workdir:      ${workDir}`);
console.log(`press Ctrl-C to stop`);

const outcome = await Promise.race([stopRequested.promise, firstExit()]);
if (typeof outcome === "string") await shutdown("signal");
// A child ended on its own. Unless that raced a stop request, it is a failure.
if (state.stopping) await shutdown("signal");
const died = outcome as Child;
log(
  `error: the ${died.name} exited unexpectedly (${describe(await died.status)}); ` +
    `stopping the ${died === queen ? "worker" : "queen"}`,
);
await shutdown("failure");
