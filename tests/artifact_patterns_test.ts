/** Which checkout files a job's artifact patterns take. */
import { deepEqual } from "node:assert/strict";
import { join } from "node:path";
import { artifactMatcher, findArtifacts } from "../worker/artifacts.ts";

Deno.test("artifact patterns: folders, globs across folders, plain names", () => {
  const paths = [
    "dist/app.js",
    "dist/sub/deep/x.map",
    "distant.txt",
    "coverage/index.html",
    "coverage",
    "logs/a.log",
    "b.log",
    "src/a.ts",
    "report.xml",
  ];
  const taken = (patterns: string[]) => paths.filter(artifactMatcher(patterns));
  deepEqual(taken(["dist/**"]), ["dist/app.js", "dist/sub/deep/x.map"]);
  deepEqual(taken(["coverage/"]), ["coverage/index.html"]);
  deepEqual(taken(["**/*.log"]), ["logs/a.log", "b.log"]);
  deepEqual(taken(["*.log"]), ["b.log"]);
  deepEqual(taken(["dist"]), ["dist/app.js", "dist/sub/deep/x.map"]);
  deepEqual(taken(["report.xml", "src/?.ts"]), ["src/a.ts", "report.xml"]);
  deepEqual(taken(["dist/*.js"]), ["dist/app.js"]);
  deepEqual(taken(["(a|b).log"]), [], "regex characters are literal");
});

Deno.test("findArtifacts skips .git, folders behind links, and links out of the checkout", async () => {
  const src = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  await Deno.writeTextFile(join(outside, "secret"), "s");
  await Deno.mkdir(join(src, ".git"));
  await Deno.writeTextFile(join(src, ".git", "config"), "x");
  await Deno.mkdir(join(src, "out"));
  await Deno.writeTextFile(join(src, "out", "a.txt"), "a");
  await Deno.symlink(outside, join(src, "out", "dir-link"));
  await Deno.symlink(join(outside, "secret"), join(src, "out", "file-link"));
  await Deno.symlink(join(src, "out", "a.txt"), join(src, "out", "inner-link"));
  const { found, notes } = await findArtifacts(src, ["**"]);
  deepEqual(found.map((f) => f.path), ["out/a.txt", "out/inner-link"]);
  deepEqual(notes, [
    "left out 'out/dir-link': a symlink out of the checkout (not followed)",
    "left out 'out/file-link': a symlink out of the checkout (not followed)",
  ]);
});
