/** Unit tests of output masking: secrets split across reads and across stdout and stderr. */
import { deepEqual, equal, ok } from "node:assert/strict";
import fc from "fast-check";
import { Masker } from "../worker/masking.ts";
import type { Stream } from "../worker/masking.ts";
import { OutputBatcher } from "../worker/output_batcher.ts";

/** Feeds `writes` through a batcher; returns what it sent, one entry per event. */
function batch(masker: Masker, writes: [Stream, string][]): [Stream, string][] {
  const sent: [Stream, string][] = [];
  const batcher = new OutputBatcher(masker, (stream, text) => sent.push([stream, text]));
  for (const [stream, text] of writes) batcher.write(stream, text);
  batcher.close();
  return sent;
}

Deno.test("a secret written half to stdout and half to stderr is masked", () => {
  const sent = batch(new Masker(["hunter2-secret"]), [
    ["stdout", "token: hunter2"],
    ["stderr", "-secret and more\n"],
  ]);
  const all = sent.map(([, text]) => text).join("");
  equal(all, "token: *** and more\n");
  // The mask goes where the secret started; what followed it stays on its own stream.
  deepEqual(sent, [["stdout", "token: ***"], ["stderr", " and more\n"]]);
});

Deno.test("a secret split across many writes and both streams is masked", () => {
  const secret = "split-across-everything";
  const writes: [Stream, string][] = [...secret].map((c, i) => [i % 3 ? "stdout" : "stderr", c]);
  const sent = batch(new Masker([secret]), [["stdout", "<"], ...writes, ["stderr", ">"]]);
  equal(sent.map(([, text]) => text).join(""), "<***>");
});

Deno.test("output without secrets keeps its streams and order", () => {
  const sent = batch(new Masker(["never-printed"]), [
    ["stdout", "one\n"],
    ["stderr", "two\n"],
    ["stdout", "three never-"],
    ["stdout", "minded\n"],
  ]);
  deepEqual(sent, [["stdout", "one\n"], ["stderr", "two\n"], ["stdout", "three never-minded\n"]]);
});

Deno.test("overlapping secrets show no part of either", () => {
  const masker = new Masker(["abcdef", "defghi"]);
  equal(masker.mask("xabcdefghiy"), "x***y");
  const sent = batch(masker, [["stdout", "xabcd"], ["stderr", "efg"], ["stdout", "hiy"]]);
  equal(sent.map(([, text]) => text).join(""), "x***y");
});

Deno.test("however output is split between reads and streams, no secret gets through", () => {
  const secrets = ["s3cr3t-value", "p4ss", "s3cr3t-value-longer"];
  const masker = new Masker(secrets);
  const word = fc.constantFrom("s3cr3t-value", "s3cr3t-value-longer", "p4ss", "s3c", "x", "\n");
  fc.assert(
    fc.property(
      fc.array(word, { maxLength: 30 }),
      fc.array(fc.tuple(fc.nat(40), fc.boolean()), { maxLength: 30 }),
      (words, cuts) => {
        const text = words.join("");
        const writes: [Stream, string][] = [];
        let at = 0;
        for (const [length, err] of cuts) {
          writes.push([err ? "stderr" : "stdout", text.slice(at, at + length)]);
          at += length;
        }
        writes.push(["stdout", text.slice(at)]);
        const out = batch(masker, writes).map(([, t]) => t).join("");
        equal(out, masker.mask(text));
        for (const secret of secrets) ok(!out.includes(secret), `${secret} in ${out}`);
      },
    ),
  );
});
