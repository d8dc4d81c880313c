/** How the CLI prints a job's trigger: the `strider jobs` column and the follow header. */
import { equal } from "node:assert/strict";
import type { Trigger } from "../protocol/mod.ts";
import { oneLine, triggerColumn, triggerHeader } from "../cli/trigger_text.ts";

const push: Trigger = {
  type: "commit",
  author: {
    name: "Mona Lisa Octocat",
    email: "monalisa@users.noreply.github.com",
    username: "monalisa",
    url: "https://github.com/monalisa",
  },
  message: "Fix the flaky retry test\n\nThe clock was read twice.",
  timestamp: "2019-05-15T22:20:30.000Z",
  url: "https://github.com/octo-org/hello-world/commit/0d1a26e",
  source: { type: "plugin", plugin: "github" },
};

Deno.test("strider jobs shows type, author and the message's first line, cut to fit", () => {
  equal(triggerColumn(push), "commit by Mona Lisa Octocat: Fix the flaky retry test");
  equal(triggerColumn(push, 30), "commit by Mona Lisa Octocat: …");
  equal(
    triggerColumn({ type: "manual", timestamp: push.timestamp, source: { type: "API", app: "x" } }),
    "manual",
  );
  equal(oneLine("  a\tb\n c  ", 10), "a b c");
  equal(oneLine("abcdefghijk", 5), "abcd…");
});

Deno.test("the follow header says who, what, from where and links once", () => {
  equal(
    triggerHeader("j1", push),
    "job j1: commit by Mona Lisa Octocat (monalisa) <monalisa@users.noreply.github.com>, " +
      "from github webhook at 2019-05-15T22:20:30.000Z\n" +
      "  Fix the flaky retry test\n" +
      "  https://github.com/octo-org/hello-world/commit/0d1a26e\n",
  );
  equal(
    triggerHeader("j2", {
      type: "manual",
      timestamp: "2026-01-01T00:00:00Z",
      source: { type: "API", app: "strider-cli" },
    }),
    "job j2: manual, from API (strider-cli) at 2026-01-01T00:00:00Z\n",
  );
  equal(
    triggerHeader("j3", {
      type: "manual",
      author: { username: "ada" },
      timestamp: "2026-01-01T00:00:00Z",
      source: { type: "UI", page: "dashboard" },
    }),
    "job j3: manual by ada, from dashboard at 2026-01-01T00:00:00Z\n",
  );
});
