/**
 * Isolation of job commands. With `bwrap`, a command sees the system read-only, can write only
 * its job's workspace, gets a private /tmp, dies with the worker, and with `network: false` has
 * an empty network namespace of its own.
 */
import type { PluginCommand } from "./plugins.ts";

export type Isolation = "none" | "bwrap";

/** Returns the program and arguments that run `command` under `isolation`. */
export function wrapCommand(
  isolation: Isolation,
  command: PluginCommand,
  where: { workspace: string; network: boolean },
): [string, string[]] {
  if (isolation === "none") return [command.command, command.args];
  const args = [
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--tmpfs",
    "/tmp",
    "--bind",
    where.workspace,
    where.workspace,
    "--die-with-parent",
    "--new-session",
    ...(where.network ? [] : ["--unshare-net"]),
    "--",
    command.command,
    ...command.args,
  ];
  return ["bwrap", args];
}

/** Throws a `TypeError` saying what to install when `isolation` cannot work on this machine. */
export async function checkIsolation(isolation: Isolation): Promise<void> {
  if (isolation === "none") return;
  try {
    const probe = await new Deno.Command("bwrap", {
      args: ["--ro-bind", "/", "/", "--", "true"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!probe.success) {
      const why = new TextDecoder().decode(probe.stderr).trim();
      throw new TypeError(`--isolation bwrap: bubblewrap cannot create a sandbox here: ${why}`);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new TypeError(
        "--isolation bwrap needs bubblewrap: install it (Debian/Ubuntu: apt-get install bubblewrap)",
      );
    }
    throw error;
  }
}
