/**
 * The release's version is the same everywhere it is written, and CHANGELOG.md keeps the Keep a
 * Changelog form: an Unreleased section or one for this version, only the standard headings.
 */
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { VERSION } from "../protocol/mod.ts";
import { ROOT } from "./helpers/cluster.ts";

Deno.test("deno.json and protocol/version.ts name the same release", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  equal(config.version, VERSION);
});

Deno.test("CHANGELOG.md has this release's entries in Keep a Changelog form", async () => {
  const text = await Deno.readTextFile(join(ROOT, "CHANGELOG.md"));
  match(text, /^# Changelog\n/);
  const releases = [...text.matchAll(/^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$/gm)];
  ok(releases.length > 0, "no ## [VERSION] - DATE sections");
  const current = releases[0][1];
  ok(current === "Unreleased" || current === VERSION, `the newest section is ${current}`);
  for (const [line, version, date] of releases.slice(current === "Unreleased" ? 1 : 0)) {
    match(version, /^\d+\.\d+\.\d+$/, line);
    ok(date, `${line} has no date`);
  }
  const headings = [...text.matchAll(/^### (.+)$/gm)].map((m) => m[1]);
  for (const heading of headings) {
    ok(
      ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"].includes(heading),
      `### ${heading} is not a Keep a Changelog heading`,
    );
  }
  // Every section has entries.
  for (const section of text.split(/^## /m).slice(1)) {
    match(section, /^- /m, `## ${section.split("\n")[0]} has no entries`);
  }
});
