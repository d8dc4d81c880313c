/**
 * contrib/systemd: each unit runs its role as a dedicated user on a read-only system, writes only
 * its data or work folder, restarts after a failure, and (the worker) is given the time to drain.
 * `systemd-analyze verify` checks both units where systemd is installed.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { QUEEN_FLAGS, WORKER_FLAGS } from "../cli/role_commands.ts";
import { ROOT } from "./helpers/cluster.ts";
import { runProgram } from "./helpers/release.ts";

const DIR = join(ROOT, "contrib", "systemd");
const UNITS = ["strider-queen.service", "strider-worker.service"];

/** A unit file's `[Service]` keys, each with every value it is given. */
function serviceKeys(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const header = line.match(/^\[(\w+)\]$/);
    if (header) section = header[1];
    else if (section === "Service") {
      const at = line.indexOf("=");
      ok(at > 0, `not KEY=VALUE: ${line}`);
      const key = line.slice(0, at);
      keys.set(key, [...(keys.get(key) ?? []), line.slice(at + 1)]);
    }
  }
  return keys;
}

/** A systemd time span (`3660`, `61min`, `1h 1min`) in seconds. */
function seconds(span: string): number {
  const units: Record<string, number> = { "": 1, s: 1, sec: 1, min: 60, m: 60, h: 3600 };
  return [...span.matchAll(/(\d+)\s*([a-z]*)/g)]
    .reduce((total, [, n, unit]) => total + Number(n) * units[unit], 0);
}

const one = (keys: Map<string, string[]>, key: string) => {
  const values = keys.get(key) ?? [];
  equal(values.length, 1, `${key} is set ${values.length} times`);
  return values[0];
};

async function unit(name: string): Promise<Map<string, string[]>> {
  return serviceKeys(await Deno.readTextFile(join(DIR, name)));
}

/** The folder after `flag` in ExecStart, which must lie under a ReadWritePaths entry. */
function writableFolder(keys: Map<string, string[]>, flag: string): void {
  const exec = one(keys, "ExecStart").split(/\s+/);
  const folder = exec[exec.indexOf(flag) + 1];
  ok(exec.includes(flag) && folder?.startsWith("/"), `ExecStart sets no absolute ${flag}`);
  const writable = (keys.get("ReadWritePaths") ?? []).flatMap((v) => v.split(/\s+/));
  ok(
    writable.some((path) => folder === path || folder.startsWith(`${path}/`)),
    `${flag} ${folder} is not under ReadWritePaths ${writable.join(" ")}`,
  );
}

Deno.test("both units run a dedicated user on a read-only system and restart", async () => {
  for (const name of UNITS) {
    const keys = await unit(name);
    const user = one(keys, "User");
    ok(user && user !== "root" && user !== "0", `${name}: User=${user}`);
    equal(one(keys, "ProtectSystem"), "strict", name);
    equal(one(keys, "NoNewPrivileges"), "yes", name);
    match(one(keys, "Restart"), /^(always|on-failure)$/, name);
    ok(seconds(one(keys, "RestartSec")) > 0, name);
    const role = name === "strider-queen.service" ? "queen" : "worker";
    match(one(keys, "ExecStart"), new RegExp(`^/\\S+/strider ${role}( |$)`), name);
  }
  writableFolder(await unit("strider-queen.service"), "--data");
  writableFolder(await unit("strider-worker.service"), "--workdir");
});

Deno.test("stopping the worker service leaves it the time its drain can take", async () => {
  const keys = await unit("strider-worker.service");
  // SIGTERM to the worker alone: it drains; job commands in their own groups finish first.
  equal(one(keys, "KillMode"), "mixed");
  deepEqual(keys.get("KillSignal") ?? ["SIGTERM"], ["SIGTERM"]);
  // A running job ends within the queen's default timeout plus the worker's kill grace.
  const drain = Number(QUEEN_FLAGS["default-timeout"].default) +
    Number(WORKER_FLAGS["kill-grace"].default);
  const stop = seconds(one(keys, "TimeoutStopSec"));
  ok(stop >= drain, `TimeoutStopSec ${stop} s is shorter than a drain (${drain} s)`);
  ok(stop <= drain + 600, `TimeoutStopSec ${stop} s is far past a drain (${drain} s)`);
});

/** The units in a temp folder, with ExecStart pointing at a program that exists here. */
async function unitsToVerify(edit: (text: string) => string = (t) => t): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "strider-units-" });
  const program = join(dir, "strider");
  await Deno.writeTextFile(program, "#!/bin/sh\n", { mode: 0o755 });
  const files = [];
  for (const name of UNITS) {
    const text = await Deno.readTextFile(join(DIR, name));
    await Deno.writeTextFile(
      join(dir, name),
      edit(text.replaceAll("/usr/local/bin/strider", program)),
    );
    files.push(join(dir, name));
  }
  return files;
}

Deno.test("systemd-analyze verify accepts both units (where systemd is installed)", async () => {
  const probe = await runProgram("sh", ["-c", "command -v systemd-analyze"]);
  if (probe.code !== 0) {
    console.log("systemd-analyze is not installed: only the units' structure was checked above");
    return;
  }
  const verify = await runProgram("systemd-analyze", ["verify", ...await unitsToVerify()]);
  equal(verify.code, 0, verify.stderr);
  const about = verify.stderr.split("\n").filter((line) => /strider-(queen|worker)/.test(line));
  deepEqual(about, [], verify.stderr);
  // The same check catches a misspelt directive.
  const broken = await runProgram("systemd-analyze", [
    "verify",
    ...await unitsToVerify((text) => text.replace("ProtectSystem=", "ProtectSytem=")),
  ]);
  match(broken.stderr, /ProtectSytem/);
});
