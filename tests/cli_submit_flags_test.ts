/** `strider submit` flags as a job spec: artifacts, and the seed's scheme-less repository form. */
import { deepEqual, equal } from "node:assert/strict";
import { specFromFlags, SUBMIT_FLAGS } from "../cli/client_commands.ts";
import { parseFlags } from "../cli/options.ts";
import { JobSpecSchema } from "../protocol/mod.ts";

const specOf = (args: string[]) =>
  specFromFlags(parseFlags(args, SUBMIT_FLAGS, { env: () => undefined }).values);

Deno.test("--artifact is repeatable and becomes the spec's artifacts", () => {
  const spec = specOf([
    "--repo",
    "/srv/r",
    "--test",
    "make",
    "--artifact",
    "dist/**",
    "--artifact",
    "coverage/",
  ]);
  deepEqual(spec.artifacts, ["dist/**", "coverage/"]);
  equal(specOf(["--repo", "/srv/r", "--test", "make"]).artifacts, undefined);
});

Deno.test("a scheme-less forge address is sent as written, a local folder as its path", async () => {
  const spec = specOf(["--repo", "github.com/jaredly/jared.git", "--test", "true"]);
  equal(spec.repo.url, "github.com/jaredly/jared.git");
  equal(JobSpecSchema.parse(spec).repo.url, "https://github.com/jaredly/jared.git");
  const dir = await Deno.makeTempDir();
  const here = Deno.cwd();
  try {
    Deno.chdir(dir);
    await Deno.mkdir("my.repo/sub", { recursive: true });
    equal(
      specOf(["--repo", "my.repo/sub", "--test", "true"]).repo.url,
      `${await Deno.realPath(dir)}/my.repo/sub`,
    );
  } finally {
    Deno.chdir(here);
  }
});
