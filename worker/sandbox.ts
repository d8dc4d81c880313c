/**
 * Isolation of job commands. With `bwrap` a command runs in namespaces of its own (user, PID,
 * IPC, UTS, optionally network), as a user that is not the worker's when the worker is root,
 * under process and memory limits, and sees only what a build needs: the system's programs and
 * libraries and `/etc` (minus its secrets) read-only, the toolchains on its `PATH` read-only, its
 * own workspace writable and a private `/tmp`. The worker's workdir (other jobs, the mirror
 * cache, spooled output), its token and anything else on the machine are not there, and the
 * worker's processes are not in the sandbox's `/proc`. Killing the sandbox's outer process
 * ends every process in it: the PID namespace dies with its first process.
 */
import { dirname, join, relative, resolve } from "node:path";
import type { PluginCommand } from "./plugins.ts";

export type Isolation = "none" | "bwrap";

/** The user sandboxed jobs run as, and its name for `USER` (its uid when it has none). */
export interface RunAs {
  uid: number;
  gid: number;
  /** From the passwd database; absent for a uid it does not name. */
  name?: string;
}

/** How job commands are contained on this worker. */
export interface SandboxSettings {
  isolation: Isolation;
  /**
   * The user jobs run as under `bwrap` when the worker is root (default: nobody); undefined when
   * the worker is not root (jobs then run as the worker's user, inside a user namespace).
   */
  runAs?: RunAs;
  /** Processes (and threads) the job's user may have at once, under `bwrap`. */
  maxProcs: number;
  /** Bytes of data memory each process of a job may use, under `bwrap`. */
  maxMemory: number;
}

/** Default limits: generous for builds, far below what takes a machine down. */
export const DEFAULT_MAX_PROCS = 1024;
export const DEFAULT_MAX_MEMORY_MIB = 4096;

/** Where a command runs and what it may see. */
export interface Where {
  workspace: string;
  /** The worker's workdir: never mounted, nor any folder that holds it. */
  workdir: string;
  network: boolean;
  /** The command's working folder (inside the workspace). */
  cwd: string;
  /** The command's `PATH`: its folders are mounted read-only, so its tools are there. */
  path?: string;
  /** A mirror's object folder that the checkout borrows objects from (read-only). */
  objects?: string;
}

/** A command as it is started: program, arguments, and the user to start it as. */
export interface Wrapped {
  program: string;
  args: string[];
  uid?: number;
  gid?: number;
}

/** Files and folders of `/etc` that hold secrets: hidden even though unreadable to the job. */
const ETC_SECRETS = [
  "/etc/shadow",
  "/etc/shadow-",
  "/etc/gshadow",
  "/etc/gshadow-",
  "/etc/security/opasswd",
  "/etc/sudoers",
  "/etc/sudoers.d",
  "/etc/ssl/private",
  "/etc/strider",
];

/** The system folders a build needs; symlinks (merged /usr) are recreated as symlinks. */
const SYSTEM = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

let layout: string[] | undefined;
/** Whether this bwrap can forbid user namespaces inside the sandbox (0.8 and later). */
let canDisableUserns = false;

/** The bwrap arguments for the system's read-only part, worked out once per worker. */
function systemMounts(): string[] {
  if (layout) return layout;
  const args: string[] = [];
  for (const path of SYSTEM) {
    try {
      const info = Deno.lstatSync(path);
      if (info.isSymlink) args.push("--symlink", Deno.readLinkSync(path), path);
      else if (info.isDirectory) args.push("--ro-bind", path, path);
    } catch {
      // Not on this system.
    }
  }
  args.push("--ro-bind", "/etc", "/etc");
  for (const path of ETC_SECRETS) {
    try {
      const info = Deno.statSync(path);
      args.push(...(info.isDirectory ? ["--tmpfs", path] : ["--ro-bind", "/dev/null", path]));
    } catch {
      // Not there.
    }
  }
  try {
    // Host keys of an ssh server.
    for (const entry of Deno.readDirSync("/etc/ssh")) {
      if (/^ssh_host_.*_key$/.test(entry.name)) {
        args.push("--ro-bind", "/dev/null", join("/etc/ssh", entry.name));
      }
    }
  } catch {
    // No ssh.
  }
  try {
    // A resolv.conf that links elsewhere (systemd-resolved) needs its target for DNS.
    const target = Deno.realPathSync("/etc/resolv.conf");
    if (!target.startsWith("/etc/") && !target.startsWith("/usr/")) {
      args.push("--ro-bind-try", dirname(target), dirname(target));
    }
  } catch {
    // No resolver configured.
  }
  return layout = args;
}

/** Whether `user` may pass through every folder from `/` down to `path` (a real path). */
function reachable(path: string, user: { uid: number; gid: number }): boolean {
  let at = "/";
  for (const part of ["", ...path.split("/").filter(Boolean)]) {
    at = join(at, part);
    const info = Deno.statSync(at);
    const mode = info.mode ?? 0;
    const bit = info.uid === user.uid ? 0o100 : info.gid === user.gid ? 0o010 : 0o001;
    if (!(mode & bit)) return false;
  }
  return true;
}

/** Whether `inner` is `outer` or inside it. */
function within(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !rel.startsWith("/"));
}

/**
 * The `PATH` folders to mount read-only: absolute, existing, not already part of the system,
 * and neither holding nor inside the worker's workdir (a `PATH` of `/` or `/srv` must not
 * mount other jobs' workspaces), except what lies in the job's own workspace.
 */
function toolchainMounts(
  path: string | undefined,
  where: Where,
  runAs: SandboxSettings["runAs"],
): string[] {
  const args: string[] = [];
  const seen = new Set<string>();
  const workdir = resolve(where.workdir);
  for (const entry of (path ?? "").split(":")) {
    if (!entry.startsWith("/")) continue;
    let real: string;
    try {
      real = Deno.realPathSync(entry);
      if (!Deno.statSync(real).isDirectory) continue;
    } catch {
      continue;
    }
    if (seen.has(real) || real === "/") continue;
    if (["/usr", "/etc", "/bin", "/sbin"].some((system) => within(real, system))) continue;
    if (within(real, resolve(where.workspace))) continue;
    if (within(workdir, real) || within(real, workdir)) continue;
    // A folder the job's user cannot reach (under a 0700 /root) is left out: bwrap runs as it.
    if (runAs && !reachable(real, runAs)) continue;
    seen.add(real);
    args.push("--ro-bind-try", real, real);
    if (real !== entry && !seen.has(entry)) {
      seen.add(entry);
      args.push("--ro-bind-try", real, entry);
    }
  }
  return args;
}

/** Returns how to start `command` under the worker's isolation. */
export function wrapCommand(
  settings: SandboxSettings,
  command: PluginCommand,
  where: Where,
): Wrapped {
  if (settings.isolation === "none") return { program: command.command, args: command.args };
  const args = [
    // Limits first (on bwrap itself): they hold for everything it starts.
    `--nproc=${settings.maxProcs}`,
    `--data=${settings.maxMemory}`,
    "--",
    "bwrap",
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    // A namespace inside would give the job capabilities there: less kernel to attack without.
    ...(canDisableUserns ? ["--disable-userns"] : []),
    ...(where.network ? [] : ["--unshare-net"]),
    // Inside, the job is always `nobody`, whoever it is outside.
    "--uid",
    "65534",
    "--gid",
    "65534",
    "--hostname",
    "strider-job",
    "--die-with-parent",
    // No terminal to inject keystrokes into, and signals from the worker's group stop here:
    // the PID namespace, not the process group, is what ends the job.
    "--new-session",
    ...systemMounts(),
    ...toolchainMounts(where.path, where, settings.runAs),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    ...(where.objects ? ["--ro-bind", where.objects, where.objects] : []),
    "--bind",
    where.workspace,
    where.workspace,
    "--chdir",
    where.cwd,
    "--",
    command.command,
    ...command.args,
  ];
  return { program: "prlimit", args, uid: settings.runAs?.uid, gid: settings.runAs?.gid };
}

/**
 * Gives the workspace to the job's user (after the fetch, which runs as the worker). Symlinks
 * are changed themselves, never followed: a repository's link to /etc/passwd stays harmless.
 */
export async function handOver(settings: SandboxSettings, workspace: string): Promise<void> {
  if (settings.isolation === "none" || !settings.runAs) return;
  const { uid, gid } = settings.runAs;
  const out = await new Deno.Command("chown", {
    args: ["-R", "-h", `${uid}:${gid}`, "--", workspace],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `could not give the workspace to the job's user: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

/**
 * Makes the workdir private to the worker's user, whatever the umask: it holds checkouts of
 * private repositories, the mirror cache, spooled output and the ledger of process groups a
 * restarted worker kills. With `--run-as`, the folders on the way to workspaces and mirror caches
 * are passable (not listable) for the job's user, which bwrap runs as when it mounts them, and for
 * no other user: they belong to the job user's group with mode 0710. The worker's own folders
 * in it (`pids`, `spool`) are 0700 either way.
 */
export async function prepareWorkdir(settings: SandboxSettings, workdir: string): Promise<void> {
  await Deno.mkdir(workdir, { recursive: true, mode: 0o700 });
  const runAs = settings.isolation === "bwrap" ? settings.runAs : undefined;
  if (!runAs) {
    await Deno.chmod(workdir, 0o700);
  } else {
    const cache = join(workdir, "cache");
    for (const dir of [workdir, join(workdir, "jobs"), cache, join(cache, "git")]) {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.chown(dir, null, runAs.gid);
      await Deno.chmod(dir, 0o710);
    }
  }
  for (const own of ["pids", "spool"]) {
    await Deno.mkdir(join(workdir, own), { recursive: true, mode: 0o700 });
    await Deno.chmod(join(workdir, own), 0o700);
  }
}

/** Fields of a passwd entry: name, uid, gid (of `getent passwd`, else `/etc/passwd`). */
type PasswdEntry = { name: string; uid: number; gid: number };

/**
 * The passwd entry of `key` (a user name, or a uid in digits): `getent passwd`, which also asks
 * the system's other user databases (LDAP, sssd), or `/etc/passwd` where there is no `getent`.
 */
export async function passwdEntry(key: string): Promise<PasswdEntry | undefined> {
  const parse = (line: string): PasswdEntry | undefined => {
    const [name, , uid, gid] = line.split(":");
    return name && /^\d+$/.test(uid ?? "") && /^\d+$/.test(gid ?? "")
      ? { name, uid: Number(uid), gid: Number(gid) }
      : undefined;
  };
  try {
    const out = await new Deno.Command("getent", {
      args: ["passwd", "--", key],
      stdout: "piped",
      stderr: "null",
    }).output();
    // Exit 2: no such entry.
    return out.success ? parse(new TextDecoder().decode(out.stdout).split("\n")[0]) : undefined;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const passwd = await Deno.readTextFile("/etc/passwd").catch(() => "");
  const byUid = /^\d+$/.test(key);
  return passwd.split("\n").map(parse).find((entry) =>
    entry && (byUid ? entry.uid === Number(key) : entry.name === key)
  );
}

/**
 * The user `--run-as` names (a user name, or a numeric uid, whose group is then the same
 * number), with the name the passwd database gives it, if any.
 */
export async function lookUpUser(name: string): Promise<RunAs> {
  if (/^\d+$/.test(name)) {
    const entry = await passwdEntry(name);
    return { uid: Number(name), gid: Number(name), ...(entry ? { name: entry.name } : {}) };
  }
  const entry = await passwdEntry(name);
  if (entry?.name === name) return entry;
  throw new TypeError(
    `--run-as ${name}: no such user in the passwd database (getent passwd); give a user name ` +
      "or a uid",
  );
}

/**
 * Throws a `TypeError` saying what to install or change when the sandbox cannot work here: it
 * runs `true` in exactly the sandbox jobs get.
 */
export async function checkIsolation(settings: SandboxSettings, workdir: string): Promise<void> {
  if (settings.isolation === "none") return;
  const probe = join(workdir, "jobs", ".sandbox-probe");
  await Deno.mkdir(probe, { recursive: true });
  try {
    const help = await new Deno.Command("bwrap", { args: ["--help"], stdout: "piped" }).output();
    canDisableUserns = new TextDecoder().decode(help.stdout).includes("--disable-userns");
    await handOver(settings, probe);
    const wrapped = wrapCommand(settings, { command: "true", args: [], screen: "true" }, {
      workspace: probe,
      workdir,
      network: false,
      cwd: probe,
    });
    const out = await new Deno.Command(wrapped.program, {
      args: wrapped.args,
      uid: wrapped.uid,
      gid: wrapped.gid,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const why = new TextDecoder().decode(out.stderr).trim();
      throw new TypeError(`--isolation bwrap: bubblewrap cannot create a sandbox here: ${why}`);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new TypeError(
        "--isolation bwrap needs bubblewrap and prlimit: install them " +
          "(Debian/Ubuntu: apt-get install bubblewrap util-linux)",
      );
    }
    throw error;
  } finally {
    await Deno.remove(probe, { recursive: true }).catch(() => {});
  }
}

/** What `strider worker` was told about isolation. */
export interface SandboxFlags {
  isolation: Isolation;
  runAs?: string;
  maxProcs?: number;
  /** MiB per process. */
  maxMemoryMib?: number;
}

/**
 * The sandbox settings for these flags: a root worker runs bwrap jobs as `--run-as` (default
 * nobody), never as root; a worker that is not root cannot switch users and says so.
 */
export async function sandboxSettings(flags: SandboxFlags): Promise<SandboxSettings> {
  const settings: SandboxSettings = {
    isolation: flags.isolation,
    maxProcs: flags.maxProcs ?? DEFAULT_MAX_PROCS,
    maxMemory: (flags.maxMemoryMib ?? DEFAULT_MAX_MEMORY_MIB) * 1024 * 1024,
  };
  if (flags.isolation === "none") {
    if (flags.runAs) throw new TypeError("--run-as works with --isolation bwrap only");
    return settings;
  }
  if (Deno.uid() !== 0) {
    if (flags.runAs) {
      throw new TypeError(
        "--run-as needs a worker started as root; without it, jobs run as the worker's user " +
          "inside a user namespace",
      );
    }
    return settings;
  }
  settings.runAs = await lookUpUser(flags.runAs ?? "nobody");
  if (settings.runAs.uid === 0) {
    throw new TypeError("--run-as must name a user other than root: jobs must not run as root");
  }
  return settings;
}
