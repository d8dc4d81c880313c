/**
 * The gap/duplicate logic of live output from other queens (`queen/remote_feed.ts` on the hub):
 * notifications arriving out of order, coalesced, repeated, lost, or during a read, and a
 * follower must still see every event once, in order. The database is a fake whose reads are
 * held and released by the test: no sleeps, no timers.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { RecordedEvent } from "../protocol/mod.ts";
import { Hub } from "../queen/hub.ts";
import { RemoteFeed } from "../queen/remote_feed.ts";
import type { FeedReader } from "../queen/remote_feed.ts";
import { notifyPayload, parsePayload } from "../queen/postgres/bus.ts";

function event(n: number): RecordedEvent {
  return {
    n,
    at: n,
    data: { event: "job:stdout", id: "j", attempt: 1, seq: n, text: `line-${n}\n` },
  } as RecordedEvent;
}

/** A database other queens commit to; `hold` makes reads wait until `release`. */
class FakeDb implements FeedReader {
  committed = new Map<string, RecordedEvent[]>();
  reads: { id: string; after: number; limit: number }[] = [];
  headReads = 0;
  /** Head reads that fail (the database is down) before one answers. */
  failHeads = 0;
  pollQueries = 0;
  #held: (() => void)[] = [];
  hold = false;

  commit(id: string, count: number): number {
    const list = this.committed.get(id) ?? [];
    this.committed.set(id, list);
    for (let i = 0; i < count; i++) list.push(event(list.length + 1));
    return list.length;
  }

  async #gate(): Promise<void> {
    if (this.hold) await new Promise<void>((resolve) => this.#held.push(resolve));
  }

  /** Lets every held read go on. */
  release(): void {
    for (const go of this.#held.splice(0)) go();
  }

  get waiting(): number {
    return this.#held.length;
  }

  async events(id: string, after: number, limit: number): Promise<RecordedEvent[]> {
    this.reads.push({ id, after, limit });
    await this.#gate();
    // What is committed by the time the read runs, as a database would answer.
    return (this.committed.get(id) ?? []).filter((e) => e.n > after).slice(0, limit);
  }

  async heads(ids: string[]): Promise<Map<string, number>> {
    this.pollQueries++;
    const heads = new Map(ids.map((id) => [id, this.committed.get(id)?.length ?? 0]));
    await this.#gate();
    return heads;
  }

  async head(id: string): Promise<number> {
    this.headReads++;
    if (this.failHeads > 0) {
      this.failHeads--;
      throw new Error("connection refused");
    }
    // The database answers as of when the query ran; the answer may arrive later.
    const head = this.committed.get(id)?.length ?? 0;
    await this.#gate();
    return head;
  }
}

/** Settles every pending promise of the feed (its reads resolve in microtasks). */
async function settle(feed: RemoteFeed): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await feed.idle();
    await new Promise<void>((resolve) => queueMicrotask(resolve));
  }
}

function setup(options: { page?: number; local?: (id: string) => number | undefined } = {}) {
  const db = new FakeDb();
  const hub = new Hub();
  const feed = new RemoteFeed(hub, db, { pageEvents: options.page ?? 64, local: options.local });
  const seen: number[] = [];
  return { db, hub, feed, seen, follow: (id = "j") => hub.follow(id, (e) => seen.push(e.n)) };
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

Deno.test("a follower gets what is committed after it followed, once each, whatever order the notifications come in", async () => {
  const { db, hub, feed, seen, follow } = setup();
  db.commit("j", 3);
  follow();
  await hub.ready("j");
  equal(hub.published("j"), 3, "publishing starts after what was committed (read from the store)");
  db.commit("j", 2);
  feed.notify("j", 5);
  await settle(feed);
  deepEqual(seen, [4, 5]);
  // Late, repeated and older notifications change nothing and read nothing.
  const reads = db.reads.length;
  feed.notify("j", 4);
  feed.notify("j", 5);
  feed.notify("j", 1);
  await settle(feed);
  deepEqual(seen, [4, 5]);
  equal(db.reads.length, reads, "nothing read for what was published already");
  // Coalesced: one notification for many commits.
  db.commit("j", 7);
  feed.notify("j", 12);
  await settle(feed);
  deepEqual(seen, range(4, 12));
});

Deno.test("lost notifications: a resync (reconnect, or the fallback poll) reads what was missed, nothing twice", async () => {
  const { db, hub, feed, seen, follow } = setup();
  follow();
  await hub.ready("j");
  db.commit("j", 4);
  // Nobody told: a resync finds them.
  await feed.resync();
  await settle(feed);
  deepEqual(seen, range(1, 4));
  await feed.resync();
  await feed.resync();
  await settle(feed);
  deepEqual(seen, range(1, 4), "a resync with nothing new publishes nothing");
  // The notification of what the resync already read arrives late.
  feed.notify("j", 4);
  db.commit("j", 1);
  feed.notify("j", 5);
  await settle(feed);
  deepEqual(seen, range(1, 5));
});

Deno.test("the fallback poll asks for every followed job in one query and reads only those with news", async () => {
  const { db, hub, feed, follow } = setup();
  const seen = new Map<string, number[]>();
  const ids = Array.from({ length: 50 }, (_, i) => `job-${i}`);
  for (const id of ids) {
    db.commit(id, 2);
    seen.set(id, []);
    hub.follow(id, (e) => seen.get(id)!.push(e.n));
    await hub.ready(id);
  }
  follow("j");
  db.commit("job-7", 3);
  db.commit("job-31", 1);
  const reads = db.reads.length;
  await feed.resync();
  await settle(feed);
  equal(db.pollQueries, 1, "one query for all 51 jobs");
  deepEqual(db.reads.slice(reads).map((r) => r.id).sort(), ["job-31", "job-7"]);
  deepEqual(seen.get("job-7"), [3, 4, 5]);
  deepEqual(seen.get("job-31"), [3]);
  deepEqual(seen.get("job-0"), []);
});

Deno.test("notifications during a read: one more read after it, in order, no duplicate", async () => {
  const { db, hub, feed, seen, follow } = setup();
  follow();
  await hub.ready("j");
  db.hold = true;
  db.commit("j", 2);
  feed.notify("j", 2);
  equal(db.waiting, 1, "a read is under way");
  // More commits and their (out of order, repeated) notifications while it runs.
  db.commit("j", 3);
  feed.notify("j", 5);
  feed.notify("j", 3);
  feed.notify("j", 5);
  equal(db.reads.length, 1, "one read at a time per job");
  db.hold = false;
  db.release();
  await settle(feed);
  deepEqual(seen, range(1, 5));
  ok(db.reads.length <= 2, `at most one read after the running one (${db.reads.length})`);
});

Deno.test("a notification heard while the follow starts is not lost", async () => {
  const { db, hub, feed, seen, follow } = setup();
  db.commit("j", 2);
  db.hold = true;
  follow();
  equal(db.waiting, 1, "the head is being read");
  // Committed and announced after the head read was sent, before it answered.
  db.commit("j", 2);
  feed.notify("j", 4);
  db.hold = false;
  db.release();
  await hub.ready("j");
  await settle(feed);
  // The head said 2; what was heard of meanwhile is read at once, not on the next commit, and
  // from after the head, not from the job's first event.
  deepEqual(seen, [3, 4]);
  deepEqual(db.reads.map((r) => r.after), [2]);
  db.commit("j", 1);
  feed.notify("j", 5);
  await settle(feed);
  deepEqual(seen, [3, 4, 5]);
});

Deno.test("a follow whose first database read failed starts on the next poll", async () => {
  const { db, hub, feed, seen, follow } = setup();
  db.commit("j", 3);
  db.failHeads = 1;
  follow();
  await hub.ready("j");
  db.commit("j", 1);
  feed.notify("j", 4);
  await settle(feed);
  equal(db.reads.length, 0, "nothing read before the job's head is known");
  await feed.resync();
  await settle(feed);
  equal(hub.published("j"), 4, "started at the head the retry found");
  db.commit("j", 2);
  feed.notify("j", 6);
  await settle(feed);
  deepEqual(seen, [5, 6]);
});

Deno.test("a long backlog is read a page at a time", async () => {
  const { db, hub, feed, seen, follow } = setup({ page: 10 });
  follow();
  await hub.ready("j");
  db.commit("j", 95);
  feed.notify("j", 95);
  await settle(feed);
  deepEqual(seen, range(1, 95));
  ok(db.reads.every((r) => r.limit === 10));
  equal(db.reads.length, 10, "ten pages of ten (the last one short)");
});

Deno.test("unknown jobs, jobs followed by nobody, and garbage payloads are ignored", async () => {
  const { db, hub, feed, seen, follow } = setup();
  feed.notify("nobody-follows", 7);
  feed.notify("../../etc", 1);
  await settle(feed);
  equal(db.reads.length, 0, "no read for a job nobody follows here");
  for (
    const payload of [
      "",
      "x",
      "j",
      "j -1 tag",
      "j 1e9 tag",
      "j NaN tag",
      "j 1",
      "j 1 tag extra",
      "a/b 1 tag",
      `${"x".repeat(400)} 1 tag`,
      "j 99999999999999999999 tag",
      "\u0000 1 tag",
    ]
  ) {
    equal(parsePayload(payload), undefined, JSON.stringify(payload));
  }
  deepEqual(parsePayload(notifyPayload("job-1.a_b", 42, "q1")), {
    id: "job-1.a_b",
    n: 42,
    from: "q1",
  });
  // An unfollowed job stops being read, even with a read under way.
  const unfollow = follow();
  await hub.ready("j");
  db.hold = true;
  db.commit("j", 3);
  feed.notify("j", 3);
  unfollow();
  db.hold = false;
  db.release();
  await settle(feed);
  deepEqual(seen, [], "nothing published after the last follower left");
  equal(hub.published("j"), undefined);
});

Deno.test("a job this queen records itself is never read back: its recorder published it", async () => {
  let lastN = 7;
  const { db, hub, feed, seen, follow } = setup({ local: () => lastN });
  db.commit("j", 7);
  follow();
  await hub.ready("j");
  equal(db.headReads, 0, "no head read for a local job");
  // The recorder publishes event 8, then the store's own notification of it arrives.
  db.commit("j", 1);
  lastN = 8;
  hub.publish("j", event(8));
  feed.notify("j", 8);
  // The fallback poll skips local jobs.
  await feed.resync();
  await settle(feed);
  deepEqual(seen, [8]);
  equal(db.reads.length, 0);
});

Deno.test("the hub passes each event number on once per followed job, from either path", () => {
  const hub = new Hub();
  const seen: number[] = [];
  const all: number[] = [];
  const changed: string[] = [];
  hub.follow("j", (e) => seen.push(e.n));
  hub.followAll((e) => all.push(e.n));
  hub.onChange((id) => changed.push(id));
  ok(hub.publish("j", event(1)));
  ok(!hub.publish("j", event(1), "remote"), "a repeat from the bus is dropped");
  ok(hub.publish("j", event(2), "remote"));
  ok(!hub.publish("j", event(2)), "and a repeat from the recorder too");
  deepEqual(seen, [1, 2]);
  deepEqual(all, [1], "events recorded by another queen are not this queen's to count");
  deepEqual(changed, ["j", "j"]);
});
