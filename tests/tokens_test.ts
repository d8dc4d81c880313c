import { deepEqual, match, ok, throws } from "node:assert/strict";
import { fillTokenSet, parseTokensFile } from "../queen/tokens.ts";
import type { TokenSet } from "../queen/tokens.ts";

Deno.test("a tokens file gives worker, write and read-only tokens", () => {
  const parsed = parseTokensFile(
    "# comment\nworker wwwwwwwwwwwwwwww1\n\napi aaaaaaaaaaaaaaaa1  # trailing comment\napi-read rrrrrrrrrrrrrrrr1\n",
  );
  deepEqual(parsed, {
    worker: ["wwwwwwwwwwwwwwww1"],
    api: ["aaaaaaaaaaaaaaaa1"],
    read: ["rrrrrrrrrrrrrrrr1"],
  });
  const set: TokenSet = { worker: ["old"], api: [], view: [] };
  const worker = set.worker;
  fillTokenSet(set, { worker: ["flag-worker"], api: ["flag-api"] }, parsed);
  // Changed in place, so a server holding the lists sees the reload.
  deepEqual(worker, ["flag-worker", "wwwwwwwwwwwwwwww1"]);
  deepEqual(set.view, ["flag-api", "aaaaaaaaaaaaaaaa1", "rrrrrrrrrrrrrrrr1"]);
});

Deno.test("a tokens file with a mistake names the line", () => {
  throws(() => parseTokensFile("worker\n"), /line 1: write 'KIND TOKEN'/);
  throws(
    () => parseTokensFile("\nadmin aaaaaaaaaaaaaaaaaaaa\n"),
    /line 2: its first word must be the kind, worker, api or api-read, then the token/,
  );
  // Written the wrong way round, or a token with a note after it: the refusal must not print
  // the token it found first.
  for (const line of ["ssssssssssssssssssss worker", "ssssssssssssssssssss runner-one-of-the-ci"]) {
    throws(() => parseTokensFile(`${line}\n`), (error: Error) => {
      match(error.message, /line 1: its first word must be the kind/);
      ok(!error.message.includes("ssssssssssssssssssss"), error.message);
      return true;
    });
  }
  throws(() => parseTokensFile("api short\n"), /line 1: a token needs at least 16 characters/);
  throws(() => parseTokensFile("api aaaaaaaaaaaaaaaaaaa extra\n"), /line 1/);
});
