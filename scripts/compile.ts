/**
 * `deno task compile`: one self-contained binary per target, dist/strider-<target>[.exe].
 *
 * Usage: deno task compile [--target T]... [--entry main.ts] [--out-dir dist]
 *   (default: every target below; scripts/release.ts passes its stamped bundle as --entry)
 *
 * `deno compile` needs the Deno runtime (denort) of each target, which it downloads unless
 * DENORT_BIN names a local one. A denort binary is for one platform, so with DENORT_BIN set only
 * the host's target is built.
 * @module
 */
import { parseArgs, stripVTControlCharacters } from "node:util";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ROLE_PERMISSIONS } from "../cli/permissions.ts";
import { QUEEN_V8_FLAGS } from "../cli/runtime_flags.ts";

const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/**
 * Permissions baked into every binary. One binary plays every role, so it carries the worker's
 * set, the superset of all of them (cli/permissions.ts): the queen's plus --allow-run and
 * --allow-sys, which only the worker needs. The release archives' launcher (scripts/release.ts)
 * passes each role exactly its own set instead.
 */
const PERMISSIONS = ROLE_PERMISSIONS.worker.flags;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const host = Deno.build.target;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string", multiple: true },
    entry: { type: "string" },
    "out-dir": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    `usage: deno task compile [--target T]... [--entry FILE] [--out-dir DIR]\ntargets: ${
      TARGETS.join(", ")
    }`,
  );
  Deno.exit(0);
}

const unknown = (values.target ?? []).filter((t) => !(TARGETS as readonly string[]).includes(t));
if (unknown.length > 0) {
  console.error(`compile: error: unknown target ${unknown.join(", ")}`);
  console.error(`compile: targets are ${TARGETS.join(", ")}`);
  Deno.exit(2);
}

const denortBin = Deno.env.get("DENORT_BIN") || undefined;
let targets: string[] = values.target ? [...new Set(values.target)] : [...TARGETS];
if (denortBin) {
  const others = targets.filter((t) => t !== host);
  if (values.target && others.length > 0) {
    console.error(
      `compile: error: DENORT_BIN (${denortBin}) is a runtime for one platform; only the host ` +
        `target ${host} can be built with it, not ${others.join(", ")}`,
    );
    Deno.exit(2);
  }
  console.log(`compile: DENORT_BIN is set (${denortBin}): building the host target ${host} only`);
  targets = [host];
}

const mainTs = values.entry ? resolve(values.entry) : join(root, "main.ts");
try {
  await Deno.stat(mainTs);
} catch {
  console.error(`compile: error: ${mainTs} does not exist`);
  Deno.exit(1);
}

const dist = values["out-dir"] ? resolve(values["out-dir"]) : join(root, "dist");
await Deno.mkdir(dist, { recursive: true });

interface Result {
  target: string;
  output: string;
  ok: boolean;
  detail: string;
}
const results: Result[] = [];

for (const target of targets) {
  const output = join(dist, `strider-${target}${target.includes("windows") ? ".exe" : ""}`);
  const args = [
    "compile",
    "--config",
    join(root, "deno.json"),
    "--target",
    target,
    "--output",
    output,
    ...PERMISSIONS,
    // One binary plays every role: the queen's runtime flags are baked in for all of them.
    ...QUEEN_V8_FLAGS,
    mainTs,
  ];
  console.log(`\n== ${target}`);
  console.log(`$ deno ${args.map((arg) => relative(root, arg) || arg).join(" ")}`);
  // The child inherits this environment, DENORT_BIN included: deno compile reads it itself.
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: denortBin ? { DENORT_BIN: denortBin } : {},
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  // Show deno's messages as they come, and keep them to explain a failure.
  let stderr = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stderr) {
    await Deno.stderr.write(chunk);
    stderr += decoder.decode(chunk, { stream: true });
  }
  const { code } = await child.status;
  if (code === 0) {
    const size = (await Deno.stat(output)).size;
    results.push({ target, output, ok: true, detail: `${(size / 1048576).toFixed(1)} MiB` });
    continue;
  }
  let detail = `deno compile exited with code ${code}`;
  const plain = stripVTControlCharacters(stderr);
  if (denortBin && /denort/i.test(plain)) {
    detail += `; DENORT_BIN=${denortBin} could not be used as the runtime for ${target}`;
  } else if (/dl\.deno\.land|error sending request|dns error|denort-/i.test(plain)) {
    detail += `; it could not download the Deno runtime (denort) for ${target} from dl.deno.land`;
    detail += target === host
      ? `; without that network access, set DENORT_BIN=/path/to/denort (denort ` +
        `${Deno.version.deno} for this host, ${host})`
      : `; a target other than this host's (${host}) can only be built with that download`;
  }
  results.push({ target, output, ok: false, detail });
}

console.log("\n== results");
for (const r of results) {
  const where = relative(Deno.cwd(), r.output) || r.output;
  console.log(
    `${r.ok ? "ok    " : "FAILED"} ${r.target}: ${r.ok ? `${where} (${r.detail})` : r.detail}`,
  );
}
const failed = results.filter((r) => !r.ok);
if (failed.length > 0) {
  console.error(`compile: failed: ${failed.map((r) => r.target).join(", ")}`);
  if (!denortBin) {
    console.error(
      `compile: hint: with a local runtime, DENORT_BIN=/path/to/denort deno task compile ` +
        `builds the host target (${host})`,
    );
  }
  Deno.exit(1);
}
console.log(`compile: built ${results.length} binar${results.length === 1 ? "y" : "ies"}`);
