/**
 * The depth check that runs on every frame and body before `JSON.parse` skips strings natively
 * (protocol/codec.ts): it must answer exactly as a character-by-character scan does, for
 * escaped quotes, runs of backslashes, brackets inside strings and unterminated strings.
 */
import { equal } from "node:assert/strict";
import { nestedDeeperThan } from "../protocol/codec.ts";

/** The scan as it was: one character at a time. */
function reference(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c) i++;
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) inString = true;
    else if (code === 0x5b || code === 0x7b) {
      if (++depth > max) return true;
    } else if (code === 0x5d || code === 0x7d) depth--;
  }
  return false;
}

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("the depth scan answers as a character scan does, on hostile strings", () => {
  const next = random(16);
  const alphabet = ['"', "\\", "[", "]", "{", "}", "x", ":", ","];
  for (let n = 0; n < 20_000; n++) {
    const length = Math.floor(next() * 40);
    let text = "";
    for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)];
    const max = Math.floor(next() * 4);
    equal(nestedDeeperThan(text, max), reference(text, max), JSON.stringify({ text, max }));
  }
});

Deno.test("brackets inside strings, escaped quotes and backslash runs do not count", () => {
  const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
  equal(nestedDeeperThan(deep(65)), true);
  equal(nestedDeeperThan(deep(64)), false);
  equal(nestedDeeperThan(JSON.stringify({ text: deep(500) })), false);
  equal(nestedDeeperThan(JSON.stringify({ text: 'a\\"' + deep(500) })), false);
  equal(nestedDeeperThan(`{"a":"\\\\"${deep(65)}}`), true, "an escaped backslash ends the string");
  equal(nestedDeeperThan(`{"a":"\\\\\\"${deep(65)}"}`), false, "an escaped quote does not");
  equal(nestedDeeperThan(`["unterminated ${deep(65)}`), false);
});
