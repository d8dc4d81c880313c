import { deepEqual, equal, match } from "node:assert/strict";
import { makeLogger } from "../cli/logger.ts";

Deno.test("json logs are one object per line with role, name and message", () => {
  const lines: string[] = [];
  makeLogger("worker build-1", "json", (line) => lines.push(line))("job j1 attempt 1: passed");
  equal(lines.length, 1);
  const entry = JSON.parse(lines[0]);
  match(entry.time, /^\d{4}-\d\d-\d\dT/);
  deepEqual({ ...entry, time: "" }, {
    time: "",
    role: "worker",
    name: "build-1",
    msg: "job j1 attempt 1: passed",
  });
});

Deno.test("text logs prefix the role", () => {
  const lines: string[] = [];
  makeLogger("queen", "text", (line) => lines.push(line))("listening");
  deepEqual(lines, ["queen: listening"]);
});
