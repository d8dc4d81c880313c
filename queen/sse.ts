import type { RecordedEvent } from "../protocol/mod.ts";
import type { Hub } from "./hub.ts";
import type { JobRecord, Store } from "./store.ts";

const encoder = new TextEncoder();
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/** Events read from the store at a time (output events are up to 64 KiB each, usually). */
const PAGE_EVENTS = 16;
/**
 * Bytes of live events a stream holds for a client that reads slower than the job writes. Past
 * it they are dropped and the stream reads them from the store once the client caught up:
 * counted in bytes, not events, as output events are up to two megabytes each.
 */
const MAX_HELD_BYTES = 1024 * 1024;

/**
 * What a live view of jobs needs from a queen: its `QueenCore`, or (on a standby) the shared
 * database and a hub fed by the cluster bus.
 */
export interface JobViews {
  hub: Hub;
  store: Store;
  job(id: string): Promise<JobRecord | undefined>;
  /** Whether the job is finished, or not one this queen records (its `job:done` is then final). */
  isFinished(id: string): boolean;
}

function frame(event: RecordedEvent): Uint8Array {
  return encoder.encode(
    `id: ${event.n}\nevent: ${event.data.event}\ndata: ${JSON.stringify(event)}\n\n`,
  );
}

/**
 * A Server-Sent Events response with a job's events after `after`: first those recorded, then
 * live ones; it ends after the job's final event. `record` is the job as read before the stream
 * starts (it ends the stream once replayed if it was finished then).
 *
 * One loop sends everything, in event order: while it is behind it reads the store a page at a
 * time (the replay, a hole, or live events dropped for a slow client), otherwise it sends the
 * live events the hub delivered. It waits for the client before each page or event, so what a
 * queen holds per stream is bounded, however slow the client and however large the log.
 */
export function jobEventStream(
  views: JobViews,
  record: JobRecord,
  after: number,
): Response {
  const id = record.id;
  // Taken now, before any read: a job finished by then has every event in the store. (This
  // queen's own record keeps changing; a status seen later says nothing of a read made before.)
  const finishedAtStart = record.view.status === "done";
  let stop = () => {};
  let pulled: (() => void) | undefined;
  const body = new ReadableStream<Uint8Array>({
    // The loop runs beside `start`: the stream calls `pull` (the client read) only once `start`
    // returned.
    start(controller) {
      void run(controller);
    },
    pull() {
      pulled?.();
      pulled = undefined;
    },
    cancel() {
      stop();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }));
  async function run(controller: ReadableStreamDefaultController<Uint8Array>) {
    let closed = false;
    let held: RecordedEvent[] = [];
    let heldBytes = 0;
    let behind = true;
    let wake: (() => void) | undefined;
    const keepalive = setInterval(() => {
      if (!closed) controller.enqueue(encoder.encode(": keepalive\n\n"));
    }, KEEPALIVE_MS);
    stop = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      unfollow();
      wake?.();
      pulled?.();
      try {
        controller.close();
      } catch {
        // The client went away first.
      }
    };
    // A job finished already has nothing live to follow.
    const unfollow = finishedAtStart ? () => {} : views.hub.follow(id, (event) => {
      if (closed || behind) return;
      const size = "text" in event.data ? event.data.text.length : 0;
      held.push(event);
      heldBytes += size + 100;
      // Too much waits for a slow client: it reads them from the store later instead.
      if (heldBytes > MAX_HELD_BYTES) {
        held = [];
        heldBytes = 0;
        behind = true;
      }
      wake?.();
    });
    /** Sends one event; true when it ended the stream. */
    const send = (event: RecordedEvent): boolean => {
      if (event.n <= after) return false;
      after = event.n;
      controller.enqueue(frame(event));
      if (event.data.event === "job:done" && views.isFinished(id)) {
        stop();
        return true;
      }
      return false;
    };
    const roomForMore = async () => {
      while (!closed && (controller.desiredSize ?? 1) <= 0) {
        await new Promise<void>((resolve) => pulled = resolve);
      }
    };
    try {
      // From here on, what is committed reaches the hub (from this queen or another): the
      // store's answers below meet it without a hole.
      await views.hub.ready(id);
      while (!closed) {
        await roomForMore();
        if (closed) break;
        if (behind) {
          // Whatever arrives during the read is in a later page or held from now on.
          behind = false;
          held = [];
          heldBytes = 0;
          const page = await views.store.events(id, after, PAGE_EVENTS);
          let ended = false;
          for (const event of page) if ((ended = send(event))) break;
          if (ended || closed) break;
          if (page.length >= PAGE_EVENTS) {
            behind = true;
            continue;
          }
          if (finishedAtStart) break;
          continue;
        }
        const event = held.shift();
        if (!event) {
          await new Promise<void>((resolve) => wake = resolve);
          wake = undefined;
          continue;
        }
        heldBytes -= ("text" in event.data ? event.data.text.length : 0) + 100;
        if (event.n <= after) continue;
        // A hole (an event this stream never got): the store has it.
        if (event.n > after + 1) {
          behind = true;
          continue;
        }
        send(event);
      }
    } catch {
      // The store failed (the queen is stopping): the client resumes from its last event id.
    }
    stop();
  }
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
