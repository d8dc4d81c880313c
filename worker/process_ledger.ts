/**
 * A record, on disk, of the process groups a worker's job commands lead, so that a worker
 * restarted after being killed (kill -9, a crash, a power cut of its own process) can end the
 * commands it left behind instead of letting them run on unsupervised.
 *
 * Each entry is a file named after the group's id holding the leader's start time, so a reused
 * process id is never mistaken for a leftover.
 */
import { join } from "node:path";

/**
 * The leader's start time as `ps` tells it, or undefined when it is gone. (Reading /proc
 * directly would need Deno's --allow-all; `ps` is within the worker's --allow-run.)
 */
async function startTime(pid: number): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("ps", {
      args: ["-o", "lstart=", "-p", String(pid)],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    return out.success && text ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Notes a process group that a command leads. */
export async function recordGroup(dir: string, pid: number): Promise<void> {
  const started = await startTime(pid);
  if (started === undefined) return;
  try {
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(join(dir, String(pid)), started);
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
    let noted = "";
    try {
      noted = Deno.readTextFileSync(path).trim();
    } catch {
      continue;
    }
    if (noted && await startTime(pid) === noted) {
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
