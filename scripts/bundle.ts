/**
 * `deno task bundle`: main.ts and everything it imports, npm packages (hono, zod) included, as
 * one JavaScript file, dist/strider.js, that runs with `deno run <permissions> dist/strider.js`
 * from any folder, without deno.json or an npm cache. `node:` built-ins stay imports. Before it,
 * the dashboard's browser script is bundled anew (`bundle_client.ts`).
 *
 * Usage: deno task bundle [--output PATH] [--minify] [--entry FILE]  (entry: main.ts)
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleClient, CLIENT_BUNDLE } from "./bundle_client.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const { values } = parseArgs({
  args: Deno.args,
  options: {
    output: { type: "string", short: "o", default: join(root, "dist", "strider.js") },
    minify: { type: "boolean", default: false },
    entry: { type: "string", default: join(root, "main.ts") },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("usage: deno task bundle [--output dist/strider.js] [--minify] [--entry main.ts]");
  Deno.exit(0);
}

const output = resolve(values.output);
const entry = resolve(values.entry);
try {
  await Deno.stat(entry);
} catch {
  console.error(`bundle: error: ${entry} does not exist`);
  Deno.exit(1);
}
// First the dashboard's browser script, which the queen (and so this bundle) carries as text.
try {
  await bundleClient();
} catch (error) {
  console.error(`bundle: error: ${(error as Error).message}`);
  Deno.exit(1);
}
console.log(`bundle: wrote ${relative(root, CLIENT_BUNDLE)}`);
await Deno.mkdir(dirname(output), { recursive: true });
// A stale bundle must not pass the checks below if this run fails.
await Deno.remove(output).catch(() => {});

const args = [
  "bundle",
  "--platform",
  "deno",
  // The default today, stated so that a change of default cannot leave npm imports in the
  // bundle (which would then need deno.json's import map to run).
  "--packages",
  "bundle",
  "--config",
  join(root, "deno.json"),
  "-o",
  output,
  ...(values.minify ? ["--minify"] : []),
  entry,
];
console.log(`$ deno ${args.map((arg) => relative(root, arg) || arg).join(" ")}`);
const { code } = await new Deno.Command(Deno.execPath(), {
  args,
  cwd: root,
  stdin: "null",
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (code !== 0) {
  console.error(`bundle: error: deno bundle exited with code ${code}`);
  Deno.exit(1);
}

let size = 0;
try {
  size = (await Deno.stat(output)).size;
} catch {
  console.error(`bundle: error: deno bundle succeeded but ${output} does not exist`);
  Deno.exit(1);
}
if (size === 0) {
  console.error(`bundle: error: ${output} is empty`);
  Deno.exit(1);
}

// Bare specifiers (`from "hono"`) or `npm:` imports left in the bundle would fail at run time
// outside this repository; `node:` imports are fine.
const text = await Deno.readTextFile(output);
const importPattern =
  /^\s*(?:(?:import|export)\b[^;"'`]*?\bfrom\s*|import\s*\(?\s*)["']([^"']+)["']/gm;
const leftover = [...text.matchAll(importPattern)]
  .map((match) => match[1])
  .filter((specifier) => !specifier.startsWith("node:"));
if (leftover.length > 0) {
  console.error(`bundle: error: ${output} still imports ${[...new Set(leftover)].join(", ")}`);
  Deno.exit(1);
}

const kib = (size / 1024).toFixed(1);
console.log(`bundle: wrote ${relative(Deno.cwd(), output) || output} (${size} bytes, ${kib} KiB)`);
