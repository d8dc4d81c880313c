import { deepEqual } from "node:assert/strict";
import { join } from "node:path";
import { denoPlugin, nodePlugin } from "../worker/plugins.ts";

const scriptsOf = (phase?: { args: string[] }[]) => phase?.map((c) => c.args[1]);

Deno.test("the node plugin installs with the package manager its lockfile names", async () => {
  const cases: [string | undefined, string][] = [
    [undefined, "npm install"],
    ["package-lock.json", "npm ci"],
    ["yarn.lock", "yarn install --frozen-lockfile"],
    ["pnpm-lock.yaml", "pnpm install --frozen-lockfile"],
  ];
  for (const [lockfile, install] of cases) {
    const src = await Deno.makeTempDir();
    if (lockfile) await Deno.writeTextFile(join(src, lockfile), "");
    const made = nodePlugin.contribute({}, { src });
    deepEqual(scriptsOf(made.phases.prepare), [install]);
    deepEqual(scriptsOf(made.phases.test), ["npm test"]);
    deepEqual(made.path, [join(src, "node_modules", ".bin")]);
  }
  const custom = nodePlugin.contribute({ node: { test: "npm run check" } }, { src: "/nowhere" });
  deepEqual(scriptsOf(custom.phases.test), ["npm run check"]);
});

Deno.test("the deno plugin runs the project's test task, else deno test", async () => {
  const src = await Deno.makeTempDir();
  deepEqual(scriptsOf(denoPlugin.contribute({}, { src }).phases.test), ["deno test"]);
  await Deno.writeTextFile(
    join(src, "deno.jsonc"),
    '{\n  // tasks\n  "tasks": { "check": "deno check", "test": "deno test -A" }\n}\n',
  );
  deepEqual(scriptsOf(denoPlugin.contribute({}, { src }).phases.test), ["deno task test"]);
});

Deno.test("node and deno keep their package caches by default, keyed by the lockfile", async () => {
  const cases: [string | undefined, string, string][] = [
    [undefined, 'node-npm-{{ checksum "package.json" }}', "~/.npm"],
    ["package-lock.json", 'node-npm-{{ checksum "package-lock.json" }}', "~/.npm"],
    ["yarn.lock", 'node-yarn-{{ checksum "yarn.lock" }}', "~/.cache/yarn"],
    ["pnpm-lock.yaml", 'node-pnpm-{{ checksum "pnpm-lock.yaml" }}', "~/.local/share/pnpm/store"],
  ];
  for (const [lockfile, key, path] of cases) {
    const src = await Deno.makeTempDir();
    if (lockfile) await Deno.writeTextFile(join(src, lockfile), "");
    deepEqual(nodePlugin.contribute({}, { src }).cache, [{ key, paths: [path] }]);
  }
  deepEqual(nodePlugin.contribute({ node: { cache: false } }, { src: "/nowhere" }).cache, []);
  deepEqual(denoPlugin.contribute({}, { src: "/nowhere" }).cache, [
    { key: 'deno-{{ checksum "deno.lock" }}', paths: ["~/.cache/deno"] },
  ]);
  deepEqual(denoPlugin.contribute({ deno: { cache: false } }, { src: "/nowhere" }).cache, []);
});
