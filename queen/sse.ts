import type { RecordedEvent } from "../protocol/mod.ts";
import type { Hub } from "./hub.ts";
import type { JobRecord, Store } from "./store.ts";
import { release } from "./buffers.ts";
import { queenMemory } from "./memory_return.ts";

const encoder = new TextEncoder();
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
const KEEPALIVE = ": keepalive\n\n";
/** Events read from the store per step of a catch-up (output events are 64 KiB to 2 MiB). */
export const CATCH_UP_EVENTS = 8;
/**
 * Bytes of live events a stream holds for a client that reads slower than the job writes. Past
 * it they are dropped and the stream reads them from the store once the client caught up:
 * counted in bytes, not events, as output events are up to two megabytes each. Reading from the
 * store costs the queen CPU (a 200 MB log's follower on a loaded machine, 2 MiB behind most of
 * the time, raised the queen's CPU per MB by a quarter); 8 MiB absorbs a follower's usual
 * jitter, so only one that is really slower reads back.
 */
export const LIVE_QUEUE_BYTES = 8 * 1024 * 1024;
/**
 * Bytes of live events all streams together may hold. Past it, any stream holding more than
 * `SMALL_HOLD` reads from the store too: a thousand stalled followers (the most a job may have)
 * cost the queen this plus a little each, not a thousand times `LIVE_QUEUE_BYTES`.
 */
export const ALL_LIVE_QUEUE_BYTES = 64 * 1024 * 1024;
const SMALL_HOLD = 256 * 1024;
/** The stream asks for more (`pull`) while less than this is queued for the client. */
const HIGH_WATER = 64 * 1024;

/** Bytes of live events held by every open stream together. */
let allHeld = 0;

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

/** Room the frames are encoded in, then copied out of at their exact size. */
let scratch = new Uint8Array(256 * 1024);

/**
 * An event's SSE frame as bytes. The parts are encoded one after the other rather than joined
 * into one string first: joining makes a second copy of an output event's text in V8's heap,
 * for every event and every follower.
 */
function frame(event: RecordedEvent): Uint8Array {
  const head = `id: ${event.n}\nevent: ${event.data.event}\ndata: `;
  const json = JSON.stringify(event);
  const most = head.length * 3 + json.length * 3 + 2;
  if (most > scratch.length) scratch = new Uint8Array(most);
  let at = encoder.encodeInto(head, scratch).written;
  at += encoder.encodeInto(json, scratch.subarray(at)).written;
  scratch[at++] = 10;
  scratch[at++] = 10;
  return scratch.slice(0, at);
}

const sizeOf = (event: RecordedEvent) => ("text" in event.data ? event.data.text.length : 0) + 100;

/**
 * A Server-Sent Events response with a job's events after `after`: first those recorded, then
 * live ones; it ends after the job's final event. `record` is the job as read before the stream
 * starts (it ends the stream once replayed if it was finished then).
 *
 * One loop sends everything, in event order: while it is behind it reads the store a page at a
 * time (the replay, a hole, or live events dropped for a slow client), otherwise it sends the
 * live events the hub delivered. It waits for the client before each page or event, so what a
 * queen holds per stream is bounded, however slow the client and however large the log.
 *
 * With `freeSent` (only for a response `Deno.serve` sends, as for `logResponse`), frames the
 * server has taken are freed at once rather than left to the garbage collector: replaying a
 * 200 MB log grew the queen by ~30 MB without.
 */
export function jobEventStream(
  views: JobViews,
  record: JobRecord,
  after: number,
  options: { freeSent?: boolean } = {},
): Response {
  const id = record.id;
  // Taken now, before any read: a job finished by then has every event in the store. (This
  // queen's own record keeps changing; a status seen later says nothing of a read made before.)
  const finishedAtStart = record.view.status === "done";
  let stop = () => {};
  let pulled: (() => void) | undefined;
  let freeTaken = () => {};
  const body = new ReadableStream<Uint8Array>({
    // The loop runs beside `start`: the stream calls `pull` (the client read) only once `start`
    // returned.
    start(controller) {
      void run(controller);
    },
    pull() {
      freeTaken();
      pulled?.();
      pulled = undefined;
    },
    cancel() {
      stop();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER }));
  async function run(controller: ReadableStreamDefaultController<Uint8Array>) {
    let closed = false;
    let held: RecordedEvent[] = [];
    let heldBytes = 0;
    let behind = true;
    let wake: (() => void) | undefined;
    const drop = () => {
      allHeld -= heldBytes;
      held = [];
      heldBytes = 0;
    };
    // Frames enqueued and not yet freed, oldest first, with the byte counts `freeTaken` needs.
    const frames: Uint8Array[] = [];
    let enqueued = 0;
    let freed = 0;
    const enqueue = (bytes: Uint8Array, keep: boolean) => {
      controller.enqueue(bytes);
      enqueued += bytes.length;
      if (keep && options.freeSent) frames.push(bytes);
      else freed += bytes.length;
    };
    freeTaken = () => {
      // Bytes the server has taken from the stream; it reads the next frame only after passing
      // one on, so the last two taken are kept.
      const taken = enqueued - (HIGH_WATER - (controller.desiredSize ?? HIGH_WATER));
      while (frames.length > 2 && freed + frames[0].length + frames[1].length <= taken) {
        const done = frames.shift()!;
        freed += done.length;
        release(done);
      }
    };
    const keepalive = setInterval(() => {
      if (!closed) enqueue(encoder.encode(KEEPALIVE), false);
    }, KEEPALIVE_MS);
    stop = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      unfollow();
      drop();
      frames.length = 0;
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
      const size = sizeOf(event);
      held.push(event);
      heldBytes += size;
      allHeld += size;
      // Too much waits for a slow client: it reads them from the store later instead.
      if (
        heldBytes > LIVE_QUEUE_BYTES ||
        (heldBytes > SMALL_HOLD && allHeld > ALL_LIVE_QUEUE_BYTES)
      ) {
        drop();
        behind = true;
      }
      wake?.();
    });
    /** Sends one event; true when it ended the stream. */
    const send = (event: RecordedEvent): boolean => {
      if (event.n <= after) return false;
      after = event.n;
      enqueue(frame(event), true);
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
          drop();
          const page = await views.store.events(id, after, CATCH_UP_EVENTS);
          let ended = false;
          for (const event of page) {
            if ("text" in event.data) queenMemory.output(event.data.text.length);
            if ((ended = send(event))) break;
          }
          if (ended || closed) break;
          if (page.length >= CATCH_UP_EVENTS) {
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
        heldBytes -= sizeOf(event);
        allHeld -= sizeOf(event);
        if (event.n <= after) continue;
        // A hole (an event this stream never got): the store has it.
        if (event.n > after + 1) {
          behind = true;
          continue;
        }
        send(event);
      }
    } catch (error) {
      // The store failed (the queen is stopping): the client resumes from its last event id.
      console.error(`queen: events of ${id} for a follower:`, error);
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
