/**
 * Running one command the way a CI job needs it: in its own process group (so a cancel reaches
 * every child it started), with output streamed as it arrives, and a kill sequence of SIGTERM,
 * a grace period, then SIGKILL to the whole group. What escapes the group is still found: in a
 * sandbox through its PID namespace, without one through a mark in its environment.
 */
import { constants } from "node:os";
import { forgetGroup, recordGroup } from "./process_ledger.ts";

/** How a command is started. */
export interface SpawnOptions {
  cwd: string;
  /** The whole environment: nothing of the worker's own is added. */
  env: Record<string, string>;
  /** Receives output as it arrives, already decoded as UTF-8. */
  onStdout: (text: string) => void;
  onStderr: (text: string) => void;
  /** Aborting kills the process group: SIGTERM, then SIGKILL after `graceMs`. */
  signal?: AbortSignal;
  graceMs?: number;
  /** Awaited after each read of output: backpressure from whoever takes the output away. */
  ready?: () => Promise<void>;
  /** Folder where the command's process group is noted while it runs (see process_ledger.ts). */
  ledger?: string;
  /**
   * Also end, when the command ends or is stopped, every process still carrying its mark in
   * its environment: those that left the process group (setsid, daemons). Without a sandbox's
   * PID namespace this is what finds them.
   */
  sweep?: boolean;
  /**
   * The program is a bwrap sandbox with its own PID namespace: a stop sends SIGTERM to every
   * process in that namespace (bwrap itself would just die), then SIGKILL ends the sandbox.
   */
  sandboxed?: boolean;
  /** The user and group to run as (a root worker's sandboxed jobs); default: the worker's. */
  uid?: number;
  gid?: number;
}

/** How a command ended: its exit code, or -1 when it could not start (with why). */
export interface CommandOutcome {
  exitCode: number;
  signal: string | null;
  error?: string;
}

async function pump(
  stream: ReadableStream<Uint8Array>,
  sink: (text: string) => void,
  ready?: () => Promise<void>,
) {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    if (text) sink(text);
    // Not reading is how a pipe slows a command down to what its reader can take.
    if (ready) await ready();
  }
  const rest = decoder.decode();
  if (rest) sink(rest);
}

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    // A negative pid addresses the process group the command leads.
    Deno.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Runs `program args` and resolves when it has exited and its output is drained. */
export async function runCommand(
  program: string,
  args: readonly string[],
  options: SpawnOptions,
): Promise<CommandOutcome> {
  let child: Deno.ChildProcess;
  const mark = options.sweep ? `${MARK}=${crypto.randomUUID()}` : undefined;
  try {
    child = new Deno.Command(program, {
      args: [...args],
      cwd: options.cwd,
      env: mark ? { ...options.env, [MARK]: mark.slice(MARK.length + 1) } : options.env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: true,
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid } : {}),
    }).spawn();
  } catch (error) {
    const why = (error as Error).message;
    return { exitCode: -1, signal: null, error: `could not start ${program}: ${why}` };
  }
  if (options.ledger) recordGroup(options.ledger, child.pid);
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    if (options.sandboxed) {
      void terminateNamespace(child.pid).then((done) => done || killGroup(child.pid, "SIGTERM"));
    } else killGroup(child.pid, "SIGTERM");
    killTimer = setTimeout(() => killGroup(child.pid, "SIGKILL"), options.graceMs ?? 10_000);
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  // Output after the drain timeout (from a process that left the group) belongs to no command.
  let open = true;
  const sink = (to: (text: string) => void) => (text: string) => open && to(text);
  const drained = Promise.all([
    pump(child.stdout, sink(options.onStdout), options.ready),
    pump(child.stderr, sink(options.onStderr), options.ready),
  ]).catch(() => {});
  try {
    const status = await child.status;
    // Background children that outlived the command would hold its output open and linger
    // between jobs: they go with it.
    killGroup(child.pid, "SIGKILL");
    // A stopped command leaves nothing: not even what left its group (setsid, daemons).
    if (mark && options.signal?.aborted) await sweep(mark);
    // A process that left the group (setsid) could still hold the pipes; stop waiting then.
    const { promise: late, resolve } = Promise.withResolvers<boolean>();
    const lateTimer = setTimeout(() => resolve(true), DRAIN_TIMEOUT_MS);
    const stuck = await Promise.race([drained.then(() => false), late]);
    clearTimeout(lateTimer);
    // Something outside the group still holds the output: it goes too.
    if (mark && stuck) await sweep(mark);
    open = false;
    const exitCode = status.signal ? 128 + signalNumber(status.signal) : status.code;
    return { exitCode, signal: status.signal };
  } finally {
    clearTimeout(killTimer);
    options.signal?.removeEventListener("abort", onAbort);
    if (options.ledger) forgetGroup(options.ledger, child.pid);
  }
}

/** PIDs that `pgrep args` lists (none when pgrep is missing or finds nothing). */
async function pgrep(args: string[]): Promise<number[]> {
  try {
    const out = await new Deno.Command("pgrep", { args, stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Sends SIGTERM to the processes inside the sandbox whose outer bwrap is `outer`: those in the
 * PID namespace of its child. Returns false, having signalled nothing, unless that namespace is
 * certainly not the worker's own.
 */
async function terminateNamespace(outer: number): Promise<boolean> {
  const [inner] = await pgrep(["-P", String(outer)]);
  if (!inner) return false;
  const members = await pgrep(["--ns", String(inner), "--nslist", "pid"]);
  // The worker or the outer bwrap listed: not a namespace of its own (yet). Never signal those.
  if (members.length === 0 || members.includes(Deno.pid) || members.includes(outer)) return false;
  for (const pid of members) {
    if (pid === inner) continue;
    try {
      Deno.kill(pid, "SIGTERM");
    } catch {
      // Gone meanwhile.
    }
  }
  return true;
}

/** The environment variable that marks a command's processes for `sweep`. */
const MARK = "STRIDER_PROCESS_MARK";

/**
 * Kills every process whose environment holds `mark` (`NAME=value`): what a command left
 * running outside its process group. Reading other processes' environments needs Deno's
 * --allow-all, so `grep` reads them; processes of other users cannot be read and are skipped.
 * Repeats while it finds any, so a process forking as it is swept goes too.
 */
export async function sweep(mark: string): Promise<number> {
  let killed = 0;
  for (let pass = 0; pass < 5; pass++) {
    let found: number[];
    try {
      const out = await new Deno.Command("sh", {
        args: ["-c", 'exec grep -lsaFx -z -e "$1" /proc/[0-9]*/environ', "sweep", mark],
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin" },
        stdout: "piped",
        stderr: "null",
      }).output();
      found = [...new TextDecoder().decode(out.stdout).matchAll(/\/proc\/(\d+)\/environ/g)]
        .map((m) => Number(m[1]))
        .filter((pid) => pid !== Deno.pid);
    } catch {
      return killed;
    }
    if (found.length === 0) break;
    for (const pid of found) {
      try {
        Deno.kill(pid, "SIGKILL");
        killed++;
      } catch {
        // Gone meanwhile.
      }
    }
  }
  return killed;
}

/** How long output may keep flowing after a command exits. */
const DRAIN_TIMEOUT_MS = 5_000;

function signalNumber(signal: string): number {
  return (constants.signals as Record<string, number>)[signal] ?? 0;
}
