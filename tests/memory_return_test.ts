import { equal } from "node:assert/strict";
import { canCollect, MemoryReturn } from "../queen/memory_return.ts";

Deno.test("the heap is collected once after a large log, when output has been quiet", () => {
  let now = 0;
  let collections = 0;
  const memory = new MemoryReturn({
    afterBytes: 100,
    quietMs: 2_000,
    now: () => now,
    collect: () => collections++,
  });
  try {
    // A small log: nothing to give back.
    memory.output(60);
    now = 10_000;
    memory.check();
    equal(collections, 0);
    // The log passes the threshold; output goes on, so the collection waits.
    memory.output(60);
    now = 11_000;
    memory.check();
    equal(collections, 0);
    memory.output(1);
    now = 12_500;
    memory.check();
    equal(collections, 0, "output arrived 1.5 s ago: not quiet yet");
    now = 13_000;
    memory.check();
    equal(collections, 1, "2 s without output");
    // Once per large log: quiet again, nothing new.
    now = 20_000;
    memory.check();
    equal(collections, 1);
  } finally {
    memory.stop();
  }
});

Deno.test("this Deno lets the queen run a full collection (--expose-gc through node:v8)", () => {
  // If a Deno upgrade takes this away, the queen no longer gives memory back after a large log.
  equal(canCollect(), true);
});
