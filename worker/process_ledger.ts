/**
 * A record, on disk, of the process groups a worker's job commands lead, so that a worker
 * restarted after being killed (kill -9, a crash) can end the commands it left behind instead of
 * letting them run on unsupervised.
 *
 * Each entry is a file named after the group's id holding the time it was started. On restart a
 * group is killed only if `ps` says a process with that id started within seconds of it, so a
 * reused process id is never mistaken for a leftover. Recording costs one small file write;
 * `ps` runs only at restart (reading /proc directly would need Deno's --allow-all).
 */
import { join } from "node:path";

/** How far `ps`'s start time (whole seconds) may be from the recorded one. */
const SAME_START_MS = 3_000;

/** When `pid` started according to `ps`, in ms since the epoch, or undefined when it is gone. */
async function startedAt(pid: number): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("ps", {
      args: ["-o", "lstart=", "-p", String(pid)],
      stdout: "piped",
      stderr: "null",
    }).output();
    const time = Date.parse(new TextDecoder().decode(out.stdout).trim());
    return out.success && !Number.isNaN(time) ? time : undefined;
  } catch {
    return undefined;
  }
}

/** Notes a process group that a command leads. */
export function recordGroup(dir: string, pid: number): void {
  try {
    // Only the worker's user: a restarted worker kills the groups listed here.
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(join(dir, String(pid)), String(Date.now()), { mode: 0o600 });
  } catch {
    // Best effort: without the note, only a restart's clean-up is lost.
  }
}

/** Forgets a process group once it is gone. */
export function forgetGroup(dir: string, pid: number): void {
  try {
    Deno.removeSync(join(dir, String(pid)));
  } catch {
    // Already forgotten.
  }
}

/** Kills every recorded group whose leader still runs; returns how many were killed. */
export async function killLeftovers(dir: string): Promise<number> {
  let killed = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const pid = Number(entry.name);
    if (!Number.isSafeInteger(pid) || pid <= 1) continue;
    const path = join(dir, entry.name);
    let noted = NaN;
    try {
      // Only notes this worker's user wrote count (a note of another is NaN: never killed).
      if (Deno.statSync(path).uid === Deno.uid()) {
        noted = Number(Deno.readTextFileSync(path).trim());
      }
    } catch {
      continue;
    }
    const started = await startedAt(pid);
    if (started !== undefined && Math.abs(started - noted) <= SAME_START_MS) {
      try {
        Deno.kill(-pid, "SIGKILL");
        killed++;
      } catch {
        // Gone in between.
      }
    }
    forgetGroup(dir, pid);
  }
  return killed;
}
