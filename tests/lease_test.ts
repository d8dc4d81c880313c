/**
 * The queen's lease and retry rules as pure decisions (queen/lease.ts), and the fake clock that
 * drives the core's timers in tests (queen/clock.ts): plain numbers, no sleeping.
 */
import { deepEqual, equal } from "node:assert/strict";
import { afterLoss, deadlineStep, expired, leaseLeft, queueTimedOut } from "../queen/lease.ts";
import { FakeClock } from "../queen/clock.ts";

const T = 1_700_000_000_000;
const LEASE = 60_000;

Deno.test("a lease runs out only after a whole lease of silence", () => {
  equal(expired(T, LEASE, T + LEASE), false);
  equal(expired(T, LEASE, T + LEASE + 1), true);
  equal(leaseLeft(T, LEASE, T + 45_000), 15_000);
  equal(leaseLeft(T, LEASE, T + 90_000), 0, "a drone silent past its lease has no time left");
});

Deno.test("a lost attempt: a cancel wins, then the timeout, then the attempts left", () => {
  const job = { cancelRequested: false, timeout: 60, startedAt: T, charged: 1, maxAttempts: 3 };
  deepEqual(afterLoss(job, T + 1_000), { next: "retry" });
  deepEqual(afterLoss({ ...job, charged: 3 }, T + 1_000), { next: "lose" });
  deepEqual(afterLoss({ ...job, charged: 3 }, T + 61_000), { next: "timeout", timeout: 60 });
  deepEqual(afterLoss({ ...job, cancelRequested: true, charged: 3 }, T + 61_000), {
    next: "cancel",
  });
  deepEqual(afterLoss({ ...job, timeout: undefined }, T + 10 ** 9), { next: "retry" });
  deepEqual(afterLoss({ ...job, startedAt: undefined }, T + 10 ** 9), { next: "retry" });
});

Deno.test("a silent started job: asked to stop past its timeout, ended a lease later", () => {
  const job = { startedAt: T, lastHeard: T, timeout: 600, stopAskedAt: undefined, held: true };
  deepEqual(deadlineStep(job, LEASE, T + 599_000), { step: "none" });
  deepEqual(deadlineStep(job, LEASE, T + 601_000), { step: "ask-stop" });
  const asked = { ...job, stopAskedAt: T + 601_000 };
  deepEqual(deadlineStep(asked, LEASE, T + 650_000), { step: "none" }, "a lease to answer");
  deepEqual(deadlineStep(asked, LEASE, T + 661_000), { step: "end-timeout", timeout: 600 });
  // A worker still talking about the job keeps it: it is cleaning up.
  deepEqual(deadlineStep({ ...asked, lastHeard: T + 655_000 }, LEASE, T + 661_000), {
    step: "none",
  });
});

Deno.test("an unanswered cancel ends the job a lease later, only while a drone holds it", () => {
  const job = { startedAt: T, lastHeard: T, timeout: undefined, stopAskedAt: T, held: true };
  deepEqual(deadlineStep(job, LEASE, T + LEASE), { step: "none" });
  deepEqual(deadlineStep(job, LEASE, T + LEASE + 1), { step: "end-cancelled" });
  // With its drone away, the lease of the orphaned attempt decides instead.
  deepEqual(deadlineStep({ ...job, held: false }, LEASE, T + LEASE + 1), { step: "none" });
});

Deno.test("--queue-timeout: past the limit only, never when it is 0", () => {
  equal(queueTimedOut(T, 300_000, T + 300_000), false);
  equal(queueTimedOut(T, 300_000, T + 300_001), true);
  equal(queueTimedOut(T, 0, T + 10 ** 9), false);
});

Deno.test("the fake clock runs due timers in order, intervals repeatedly, cleared ones never", () => {
  const clock = new FakeClock(T);
  const ran: string[] = [];
  clock.setTimeout(() => ran.push(`b@${clock.now() - T}`), 200);
  clock.setTimeout(() => ran.push(`a@${clock.now() - T}`), 100);
  const cleared = clock.setTimeout(() => ran.push("never"), 50);
  clock.clearTimeout(cleared);
  const tick = clock.setInterval(() => ran.push(`tick@${clock.now() - T}`), 150);
  clock.advance(320);
  deepEqual(ran, ["a@100", "tick@150", "b@200", "tick@300"]);
  equal(clock.now(), T + 320);
  clock.clearInterval(tick);
  clock.advance(1_000);
  equal(ran.length, 4);
});
