/**
 * Each role's deno.json task runs with the fewest permissions it needs: the queen's set cannot
 * start a process, the worker's can. The README's table and the release launchers say and pass
 * exactly the sets of cli/permissions.ts.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { QUEEN_PERMISSIONS, ROOT, WORKER_PERMISSIONS } from "./helpers/cluster.ts";
import { permissionRows, ROLE_PERMISSIONS } from "../cli/permissions.ts";
import { cmdLauncher, RUN_OPTIONS, shLauncher } from "../scripts/launchers.ts";
import { QUEEN_V8_FLAGS } from "../cli/runtime_flags.ts";

const tasks = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks;
const flagsOf = (task: string) => task.split(/\s+/).filter((word) => word.startsWith("--allow-"));

async function trySpawn(permissions: string[]): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir();
  const probe = join(dir, "probe.ts");
  await Deno.writeTextFile(
    probe,
    'await new Deno.Command("true").output(); console.log("spawned");',
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("the queen task runs without --allow-run and its permissions cannot spawn", async () => {
  const queenFlags = flagsOf(tasks.queen);
  deepEqual(queenFlags.toSorted(), QUEEN_PERMISSIONS.toSorted());
  ok(!queenFlags.some((flag) => flag.startsWith("--allow-run")));
  const result = await trySpawn(queenFlags);
  equal(result.code, 1);
  match(result.stderr, /NotCapable|Requires run access/);
});

Deno.test("the worker task's permissions can spawn job commands", async () => {
  const workerFlags = flagsOf(tasks.worker);
  deepEqual(workerFlags.toSorted(), WORKER_PERMISSIONS.toSorted());
  equal((await trySpawn(workerFlags)).code, 0);
});

/** A markdown table row with its cells' padding collapsed. */
const normalRow = (row: string) =>
  row.split("|").map((cell) => cell.trim().replace(/\s+/g, " ")).join("|");

Deno.test("the README's permission table is the one cli/permissions.ts holds", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const section = readme.slice(readme.indexOf("## Permissions"));
  const lines = section.split("\n");
  const start = lines.findIndex((line) => line.startsWith("|"));
  const end = lines.findIndex((line, i) => i > start && !line.startsWith("|"));
  deepEqual(
    lines.slice(start + 2, end).map(normalRow),
    permissionRows().map(normalRow),
    `README.md's permission table must read:\n${permissionRows().join("\n")}`,
  );
});

/** A release folder with the sh launcher and a fake `deno` that prints its arguments. */
async function launcherFolder(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "strider-launcher-" });
  await Deno.writeTextFile(join(dir, "strider"), shLauncher(), { mode: 0o755 });
  await Deno.writeTextFile(join(dir, "deno"), '#!/bin/sh\nprintf "%s\\n" "$@"\n', {
    mode: 0o755,
  });
  await Deno.writeTextFile(join(dir, "strider.js"), "");
  return dir;
}

async function launch(program: string, args: string[]): Promise<string[]> {
  const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trimEnd().split("\n");
}

Deno.test("the release launcher passes each role exactly its permissions (and the queen its V8 flags)", async () => {
  const dir = await launcherFolder();
  const cases: [string[], keyof typeof ROLE_PERMISSIONS][] = [
    [["queen", "--port", "0"], "queen"],
    [["worker", "--connect", "http://q"], "worker"],
    [["submit", "--repo", "."], "client"],
    [["jobs"], "client"],
    [["--version"], "client"],
    [[], "client"],
    // A role's name elsewhere on the line is an argument, not the role.
    [["logs", "queen"], "client"],
  ];
  for (const [args, role] of cases) {
    const argv = await launch(join(dir, "strider"), args);
    deepEqual(argv, [
      "run",
      ...RUN_OPTIONS,
      ...ROLE_PERMISSIONS[role].flags,
      ...(role === "queen" ? QUEEN_V8_FLAGS : []),
      join(await Deno.realPath(dir), "strider.js"),
      ...args,
    ], `strider ${args.join(" ")}`);
  }
  // Through a symlink elsewhere (install.sh links PREFIX/bin/strider), arguments with spaces kept.
  const bin = await Deno.makeTempDir({ prefix: "strider-bin-" });
  await Deno.symlink(join(dir, "strider"), join(bin, "strider"));
  const argv = await launch(join(bin, "strider"), ["submit", "--test", "echo a  b"]);
  equal(argv.at(-4), join(await Deno.realPath(dir), "strider.js"));
  deepEqual(argv.slice(-3), ["submit", "--test", "echo a  b"]);
});

Deno.test("the Windows launcher sets each role's permissions", () => {
  const lines = cmdLauncher().split("\r\n");
  const flags = (text: string) => text.match(/--allow-[a-z]+/g) ?? [];
  const set = (condition: string) => lines.find((line) => line.startsWith(condition)) ?? "";
  deepEqual(flags(set('set "_flags=')), [...ROLE_PERMISSIONS.client.flags]);
  deepEqual(flags(set('if "%~1"=="queen"')), [...ROLE_PERMISSIONS.queen.flags]);
  deepEqual(flags(set('if "%~1"=="worker"')), [...ROLE_PERMISSIONS.worker.flags]);
  ok(lines.some((line) => line.includes('"%~dp0deno.exe" run --no-prompt --no-config %_flags%')));
});

Deno.test("every way of starting a queen passes its runtime flags (cli/runtime_flags.ts)", async () => {
  const words = (text: string) => text.split(/[\s"]+/);
  for (const flag of QUEEN_V8_FLAGS) {
    ok(words(tasks.queen).includes(flag), `deno.json's queen task lacks ${flag}`);
    ok(!words(tasks.worker).includes(flag), "the worker task keeps V8's defaults");
    const sh = shLauncher().split("\n").find((line) => line.trim().startsWith("queen)")) ?? "";
    ok(words(sh).includes(flag), `the sh launcher's queen line lacks ${flag}`);
    const cmd = cmdLauncher().split("\r\n").find((line) => line.includes('=="queen"')) ?? "";
    ok(words(cmd).includes(flag), `the Windows launcher's queen line lacks ${flag}`);
  }
  const start = await Deno.readTextFile(join(ROOT, "scripts", "start.ts"));
  match(start, /\[\.\.\.QUEEN_PERMISSIONS, \.\.\.QUEEN_V8_FLAGS\]/);
});
