/** Unit tests of reading a repository's strider.json, as a hostile repository would shape it. */
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import type { DispatchedJob } from "../protocol/mod.ts";
import { denoPlugin } from "../worker/plugins.ts";
import { repoSettings } from "../worker/repo_settings.ts";

const job = {
  job_id: "j1",
  repo: { url: "/srv/r", vcs: "git" },
  ref: { branch: "main" },
  job_type: "TEST",
  trigger: { type: "manual" },
} as DispatchedJob;

Deno.test("a strider.json that links to a file of the worker is refused, unread", async () => {
  const src = await Deno.makeTempDir({ prefix: "strider-settings-test-" });
  try {
    const secret = join(src, "..", `strider-worker-secret-${crypto.randomUUID()}`);
    await Deno.writeTextFile(secret, "STRIDER_WORKER_TOKEN=do-not-show-me", { mode: 0o600 });
    try {
      await Deno.symlink(secret, join(src, "strider.json"));
      const settings = await repoSettings(job, src);
      equal(settings.ok, false);
      const error = settings.ok ? "" : settings.error;
      match(error, /regular file/);
      ok(!error.includes("do-not"), error);
    } finally {
      await Deno.remove(secret);
    }
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("a plain strider.json still decides the plugins", async () => {
  const src = await Deno.makeTempDir({ prefix: "strider-settings-test-" });
  try {
    await Deno.writeTextFile(join(src, "strider.json"), '{"plugins": ["env", "custom"]}');
    const settings = await repoSettings(job, src);
    equal(settings.ok && settings.plugins.join(","), "env,custom");
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("the deno plugin does not follow a deno.json link out of the repository", async () => {
  const src = await Deno.makeTempDir({ prefix: "strider-settings-test-" });
  const outside = await Deno.makeTempFile({ prefix: "strider-outside-", suffix: ".json" });
  try {
    await Deno.writeTextFile(outside, '{"tasks": {"test": "echo outside"}}');
    await Deno.symlink(outside, join(src, "deno.json"));
    const contribution = denoPlugin.contribute({}, { src });
    equal(contribution.phases.test?.[0].screen, "deno test");
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(outside);
  }
});
