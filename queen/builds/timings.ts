/**
 * Seconds per test file from JUnit XML reports, as test runners write them (bats-core's
 * `--formatter junit`, pytest, Jest's reporter...): each `<testcase>`'s `time` is added to its
 * file (its `file` attribute, else its `classname`); a report with no test cases gives each
 * `<testsuite>`'s time to its `file` or `name`. Attributes are read with patterns, not a full XML
 * parser: a malformed report gives fewer timings, never an error.
 * @module
 */
import type { ShardTimings } from "../../protocol/mod.ts";

/** Reports bigger than this are skipped. */
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;

const ENTITIES: Record<string, string> = {
  "&amp;": "&",
  "&lt;": "<",
  "&gt;": ">",
  "&quot;": '"',
  "&apos;": "'",
};

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([A-Za-z_:][\w:.-]*)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    out[m[1]] = (m[3] ?? m[4]).replace(/&(amp|lt|gt|quot|apos);/g, (e) => ENTITIES[e]);
  }
  return out;
}

/** Seconds per file found in one JUnit XML report. */
export function junitTimings(xml: string): ShardTimings {
  const out: ShardTimings = {};
  const add = (file: string | undefined, time: string | undefined) => {
    const seconds = Number(time);
    if (!file || file.length > 1024 || !Number.isFinite(seconds) || seconds < 0) return;
    out[file] = Math.round(((out[file] ?? 0) + seconds) * 1000) / 1000;
  };
  for (const m of xml.matchAll(/<testcase\b([^>]*)>/g)) {
    const a = attributes(m[1]);
    add(a.file ?? a.classname, a.time);
  }
  if (Object.keys(out).length) return out;
  for (const m of xml.matchAll(/<testsuite\b([^>]*)>/g)) {
    const a = attributes(m[1]);
    add(a.file ?? a.name, a.time);
  }
  return out;
}
