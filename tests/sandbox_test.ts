/** Unit tests of the bwrap command line: what a sandbox mounts, and what it never does. */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { jobUser } from "../worker/job_env.ts";
import { lookUpUser, passwdEntry, sandboxSettings, wrapCommand } from "../worker/sandbox.ts";
import type { SandboxSettings } from "../worker/sandbox.ts";

const settings: SandboxSettings = {
  isolation: "bwrap",
  runAs: { uid: 65534, gid: 65534 },
  maxProcs: 100,
  maxMemory: 256 * 1024 * 1024,
};
const command = { command: "sh", args: ["-c", "make"], screen: "make" };

/** The `[source, destination]` pairs of every mount of kind `flag` in `args`. */
function mounts(args: string[], flag: string): [string, string][] {
  const found: [string, string][] = [];
  args.forEach((arg, i) => arg === flag && found.push([args[i + 1], args[i + 2]]));
  return found;
}

Deno.test("without isolation a command runs as it is", () => {
  deepEqual(
    wrapCommand({ ...settings, isolation: "none", runAs: undefined }, command, {
      workspace: "/w/jobs/1",
      workdir: "/w",
      network: true,
      cwd: "/w/jobs/1/src",
    }),
    { program: "sh", args: ["-c", "make"] },
  );
});

Deno.test("a sandbox gets namespaces, limits and the job user, and runs the command last", () => {
  const wrapped = wrapCommand(settings, command, {
    workspace: "/w/jobs/1",
    workdir: "/w",
    network: false,
    cwd: "/w/jobs/1/src",
  });
  equal(wrapped.program, "prlimit");
  deepEqual([wrapped.uid, wrapped.gid], [65534, 65534]);
  deepEqual(wrapped.args.slice(0, 4), [
    "--nproc=100",
    `--data=${256 * 1024 * 1024}`,
    "--",
    "bwrap",
  ]);
  for (const flag of ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]) {
    ok(wrapped.args.includes(flag), flag);
  }
  ok(wrapped.args.includes("--unshare-net"), "network: false keeps the network");
  ok(wrapped.args.includes("--die-with-parent"));
  deepEqual(wrapped.args.slice(-4), ["--", "sh", "-c", "make"]);
  deepEqual(mounts(wrapped.args, "--bind"), [["/w/jobs/1", "/w/jobs/1"]]);
  // /proc is the sandbox's own, /tmp private.
  ok(wrapped.args.join(" ").includes("--proc /proc"));
  ok(wrapped.args.join(" ").includes("--tmpfs /tmp"));
  // Secrets of /etc are covered where they exist.
  try {
    Deno.statSync("/etc/shadow");
    ok(
      mounts(wrapped.args, "--ro-bind").some(([s, d]) => s === "/dev/null" && d === "/etc/shadow"),
    );
  } catch {
    // No /etc/shadow here.
  }
});

Deno.test("a PATH naming /, the workdir or what holds it mounts none of them", async () => {
  const root = await Deno.makeTempDir({ prefix: "strider-sandbox-test-" });
  try {
    const workdir = join(root, "work");
    const workspace = join(workdir, "jobs", "1");
    const tools = join(root, "tools", "bin");
    const cache = join(workdir, "cache");
    for (const dir of [workspace, tools, cache]) await Deno.mkdir(dir, { recursive: true });
    await Deno.chmod(root, 0o755);
    await Deno.chmod(join(root, "tools"), 0o755);
    await Deno.chmod(tools, 0o755);
    const wrapped = wrapCommand({ ...settings, runAs: undefined }, command, {
      workspace,
      workdir,
      network: true,
      cwd: workspace,
      path: ["/", root, workdir, cache, join(workspace, "node_modules", ".bin"), tools, "relative"]
        .join(":"),
    });
    const sources = mounts(wrapped.args, "--ro-bind-try").map(([source]) => source);
    deepEqual(sources, [await Deno.realPath(tools)]);
    ok(!wrapped.args.includes("--unshare-net"), "the network was cut");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a PATH folder the job user cannot reach is left out, not an error", async () => {
  const root = await Deno.makeTempDir({ prefix: "strider-sandbox-test-" });
  try {
    const tools = join(root, "bin");
    await Deno.mkdir(tools);
    await Deno.chmod(root, 0o700);
    const wrapped = wrapCommand(settings, command, {
      workspace: "/w/jobs/1",
      workdir: "/w",
      network: true,
      cwd: "/w/jobs/1",
      path: tools,
    });
    deepEqual(mounts(wrapped.args, "--ro-bind-try"), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--run-as is refused without bwrap, and never allows root", async () => {
  await rejects(sandboxSettings({ isolation: "none", runAs: "nobody" }), /--isolation bwrap/);
  if (Deno.uid() === 0) {
    await rejects(sandboxSettings({ isolation: "bwrap", runAs: "root" }), /other than root/);
    await rejects(sandboxSettings({ isolation: "bwrap", runAs: "no-such-user-x" }), /no such/);
    equal((await sandboxSettings({ isolation: "bwrap" })).runAs?.uid, 65534);
  } else {
    await rejects(sandboxSettings({ isolation: "bwrap", runAs: "nobody" }), /root/);
  }
});

Deno.test("a job's USER is the --run-as user's name, its uid when it has none, else the worker's", async () => {
  deepEqual(await lookUpUser("nobody"), { name: "nobody", uid: 65534, gid: 65534 });
  deepEqual(await lookUpUser("65534"), { name: "nobody", uid: 65534, gid: 65534 });
  equal(jobUser(await lookUpUser("65534")), "nobody");
  let unnamed = 54321;
  while (await passwdEntry(String(unnamed))) unnamed++;
  deepEqual(await lookUpUser(String(unnamed)), { uid: unnamed, gid: unnamed });
  equal(jobUser(await lookUpUser(String(unnamed))), String(unnamed));
  // Not run as another user (no isolation, or a worker that is not root): the worker's name.
  equal(jobUser(undefined, () => "the-worker"), "the-worker");
  await rejects(lookUpUser("no-such-user-x"), /no such user/);
});
