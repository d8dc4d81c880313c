import { deepEqual, equal, match, rejects } from "node:assert/strict";
import { join } from "node:path";
import { loadPluginFiles, substitute } from "../worker/plugin_files.ts";

Deno.test("plugin files become plugins with {{config.x}} filled from the job's config", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    join(dir, "make.json"),
    JSON.stringify({
      name: "make",
      env: { MAKE_TARGET: "{{config.target}}" },
      path: ["/opt/make/bin"],
      phases: {
        test: ["make {{config.target}}", { command: "make", args: ["lint"], screen: "lint it" }],
        cleanup: "make clean",
      },
    }),
  );
  await Deno.writeTextFile(join(dir, "notes.txt"), "not a plugin");
  const [plugin, ...rest] = await loadPluginFiles(dir);
  equal(rest.length, 0);
  equal(plugin.name, "make");
  const made = plugin.contribute({ make: { target: "check" } }, { src: dir });
  deepEqual(made.env, { MAKE_TARGET: "check" });
  deepEqual(made.path, ["/opt/make/bin"]);
  deepEqual(made.phases.test?.map((c) => [c.command, c.args, c.screen]), [
    ["sh", ["-ec", "make check"], "make check"],
    ["make", ["lint"], "lint it"],
  ]);
  equal(made.phases.cleanup?.[0].screen, "make clean");
});

Deno.test("a broken plugin file stops the worker with a message naming the file", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "bad.json"), JSON.stringify({ name: "-bad", phases: {} }));
  await rejects(loadPluginFiles(dir), (error: Error) => {
    match(error.message, /bad\.json is invalid/);
    match(error.message, /name/);
    return true;
  });
  await Deno.writeTextFile(join(dir, "bad.json"), "{ not json");
  await rejects(loadPluginFiles(dir), /bad\.json is not JSON/);
});

Deno.test("substitution leaves unknown keys empty and reads nested keys", () => {
  equal(
    substitute("a {{config.x}} b {{ config.y.z }} c {{config.nope}}", { x: 1, y: { z: "deep" } }),
    "a 1 b deep c ",
  );
});
