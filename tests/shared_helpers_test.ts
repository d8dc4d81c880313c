import { deepEqual, equal, ok } from "node:assert/strict";
import { JobSpecSchema } from "../protocol/mod.ts";
import { foldEvent, newJobView, VIEW_OUTPUT_LIMIT } from "../queen/job_state.ts";
import { backoff } from "../protocol/backoff.ts";
import { capText, utf8Length } from "../protocol/cap_text.ts";
import { hex } from "../protocol/hex.ts";

Deno.test("capText counts bytes, not UTF-16 units, and never splits a character", () => {
  // 'é' is 2 bytes, '€' 3, '😀' 4 (two UTF-16 units).
  const text = "é€😀ab";
  equal(utf8Length(text), new TextEncoder().encode(text).length);
  deepEqual(capText(text, 100), { text, bytes: 11, cut: false });
  deepEqual(capText(text, 11), { text, bytes: 11, cut: false });
  // Room for 'é' and two bytes of '€': the '€' goes whole.
  deepEqual(capText(text, 4), { text: "é", bytes: 2, cut: true });
  deepEqual(capText(text, 8), { text: "é€", bytes: 5, cut: true });
  deepEqual(capText(text, 9), { text: "é€😀", bytes: 9, cut: true });
  deepEqual(capText(text, 0), { text: "", bytes: 0, cut: true });
  deepEqual(capText("", 0), { text: "", bytes: 0, cut: false });
  // A 1 MiB budget holds a third as many 3-byte characters as UTF-16 units would allow.
  const wide = "€".repeat(1024 * 1024);
  const capped = capText(wide, 1024 * 1024);
  equal(capped.cut, true);
  equal(new TextEncoder().encode(capped.text).length, capped.bytes);
  equal(capped.bytes <= 1024 * 1024, true);
});

Deno.test("backoff doubles to its cap, stops after its tries, and jitters within bounds", () => {
  const policy = { minMs: 1_000, maxMs: 16_000, tries: 5 };
  deepEqual([0, 1, 2, 3, 4, 5].map((n) => backoff(n, policy)), [
    1_000,
    2_000,
    4_000,
    8_000,
    16_000,
    undefined,
  ]);
  // Without tries it never gives up, and a huge failure count stays at the cap.
  equal(backoff(10_000, { minMs: 250, maxMs: 10_000 }), 10_000);
  const jittered = { minMs: 250, maxMs: 10_000, jitter: true };
  equal(backoff(3, jittered, () => 0), 250);
  equal(backoff(3, jittered, () => 0.5), 250 + 0.5 * (2_000 - 250));
  equal(backoff(50, jittered, () => 1), 10_000);
});

Deno.test("hex writes two lowercase digits a byte", () => {
  equal(hex(new Uint8Array([0, 1, 15, 16, 255])), "00010f10ff");
  equal(hex(new Uint8Array([171, 205]).buffer), "abcd");
});

Deno.test("the queen's job view holds its output limit in bytes, not UTF-16 units", () => {
  const spec = JobSpecSchema.parse({ repo: { url: "/r" }, ref: { branch: "main" } });
  const view = newJobView("j1", spec, 0);
  // 400,000 three-byte characters: 1.2 MB, but fewer UTF-16 units than the 1 MiB limit.
  const text = "€".repeat(400_000);
  const grew = foldEvent(view, {
    n: 1,
    at: 0,
    data: { event: "job:stdout", id: "j1", attempt: 1, seq: 1, text },
  }, 0);
  equal(grew, VIEW_OUTPUT_LIMIT);
  const shown = JSON.stringify(view);
  ok(shown.includes("the rest of the output is in the full log"));
  const euros = shown.match(/€/g)!.length;
  ok(euros * 3 <= VIEW_OUTPUT_LIMIT && euros * 3 > VIEW_OUTPUT_LIMIT - 3, `${euros} kept`);
  // A full view takes no more.
  equal(
    foldEvent(view, {
      n: 2,
      at: 0,
      data: { event: "job:stdout", id: "j1", attempt: 1, seq: 2, text: "x" },
    }, grew),
    0,
  );
});
