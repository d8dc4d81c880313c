import type { RecordedEvent } from "../protocol/mod.ts";
import type { Hub } from "./hub.ts";
import type { JobRecord, Store } from "./store.ts";
import { release } from "./buffers.ts";
import { queenMemory } from "./memory_return.ts";

const encoder = new TextEncoder();
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
const KEEPALIVE = ": keepalive\n\n";
/**
 * Bytes of frames a live follower may have waiting in its stream. Past it the follower is
 * behind: live events are no longer queued for it, and it is caught up from the store instead,
 * a page at a time as it reads. So a follower that reads slowly, or stops reading, costs the
 * queen at most this much (plus a page), however much the job prints, and still gets every
 * event in order. Reading from the store costs the queen CPU (a 200 MB log's follower on a
 * loaded machine, 2 MiB behind most of the time, raised the queen's CPU per MB by a quarter);
 * 8 MiB absorbs a follower's usual jitter, so only one that is really slower reads back.
 */
export const LIVE_QUEUE_BYTES = 8 * 1024 * 1024;
/**
 * Bytes of frames all live followers together may have waiting. Past it, any follower with more
 * than `HIGH_WATER` waiting is fed from the store too: a thousand stalled followers (the most a
 * job may have) cost the queen this plus a little each, not a thousand times `LIVE_QUEUE_BYTES`.
 */
export const ALL_LIVE_QUEUE_BYTES = 64 * 1024 * 1024;
/** The stream asks for more (`pull`) while less than this is queued. */
const HIGH_WATER = 256 * 1024;

/** Each open stream's bytes waiting (until drained), for `ALL_LIVE_QUEUE_BYTES`. */
const streams = new Set<() => number>();

function allQueued(): number {
  let sum = 0;
  for (const queued of streams) sum += queued();
  return sum;
}

/** Events read from the store per step of a catch-up (output events are 64 KiB to 2 MiB). */
export const CATCH_UP_EVENTS = 8;

/**
 * What a live view of jobs needs from a queen (its `QueenCore`; tests pass a store and a hub):
 * the hub also carries the jobs other queens record, fed by the cluster bus.
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

/** Whether `events` (in publishing order) continue `after` without a hole. */
function contiguous(events: RecordedEvent[], after: number): boolean {
  for (const event of events) {
    if (event.n > after + 1) return false;
    after = Math.max(after, event.n);
  }
  return true;
}

/**
 * A Server-Sent Events response with a job's events after `after`: first those recorded, then
 * live ones; it ends after the job's final event. `record` is the job as read before the stream
 * starts (it ends the stream once replayed if it was finished then).
 *
 * The stream has two modes. Live: each event the hub publishes is framed and queued at once.
 * Behind (at the start, and whenever the frames waiting pass `LIVE_QUEUE_BYTES`): published
 * events are dropped here, and the stream's `pull` reads the next events after the last one
 * sent from the store, `CATCH_UP_EVENTS` at a time, only when the client has read what was
 * queued; once a read comes back short, the follower has caught up and is live again. The
 * recorder appends an event to the store before publishing it, and the store's reads include
 * what is not committed yet, so nothing published while behind is missed.
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
  // From then on, what is committed reaches the hub (from this queen or another, through the
  // cluster bus): the store's answers meet it without a hole.
  let ready: Promise<void> | undefined;
  let stop = () => {};
  let forget = () => {};
  let closed = false;
  let behind = true;
  /** A store read is under way: events published meanwhile wait here (the read may miss them). */
  let reading = false;
  let waiting: RecordedEvent[] = [];
  let waitingBytes = 0;
  /** Events published during a read were dropped (too many to keep): read again. */
  let missed = false;
  let stream!: ReadableStreamDefaultController<Uint8Array>;
  /** Bytes of frames queued and not read by the client. */
  const queued = () => HIGH_WATER - (stream.desiredSize ?? 0);

  // With `freeSent` (as for `logResponse`: only for a response `Deno.serve` sends), frames the
  // server has taken are freed at once rather than left to the garbage collector: replaying a
  // 200 MB log grew the queen by ~30 MB without. `frames`: enqueued, not freed, oldest first.
  const frames: Uint8Array[] = [];
  let enqueued = 0;
  let freed = 0;
  const freeTaken = () => {
    // The server reads the next frame only after passing one on; the last two read are kept.
    const taken = enqueued - queued();
    while (frames.length > 2 && freed + frames[0].length + frames[1].length <= taken) {
      const done = frames.shift()!;
      freed += done.length;
      release(done);
    }
  };
  const send = (event: RecordedEvent) => {
    if (closed || event.n <= after) return;
    after = event.n;
    const bytes = frame(event);
    stream.enqueue(bytes);
    if (options.freeSent) {
      frames.push(bytes);
      enqueued += bytes.length;
      freeTaken();
    }
    if (event.data.event === "job:done" && views.isFinished(id)) stop();
  };
  const unfollow = views.hub.follow(id, (event) => {
    if (closed) return;
    if (reading) {
      // Sizes of output only: enough to bound what a slow store read lets pile up.
      waitingBytes += "text" in event.data ? event.data.text.length : 64;
      if (waitingBytes > LIVE_QUEUE_BYTES) missed = true;
      else waiting.push(event);
      return;
    }
    if (behind) return;
    if (event.n <= after) return;
    if (event.n > after + 1) {
      // A hole (an event this stream never got): the store has it.
      behind = true;
      void kick();
      return;
    }
    const mine = queued();
    if (
      mine >= LIVE_QUEUE_BYTES || (mine >= HIGH_WATER && allQueued() >= ALL_LIVE_QUEUE_BYTES)
    ) {
      behind = true;
      return;
    }
    send(event);
  });

  /** Reads from the store while behind and the client has room, then goes live. */
  const catchUp = async () => {
    ready ??= views.hub.ready(id);
    await ready;
    while (!closed && behind && (stream.desiredSize ?? 0) > 0) {
      reading = true;
      waiting = [];
      waitingBytes = 0;
      missed = false;
      let page: RecordedEvent[];
      try {
        page = await views.store.events(id, after, CATCH_UP_EVENTS);
      } finally {
        reading = false;
      }
      for (const event of page) {
        send(event);
        // Replayed output churns the heap as recording it does: give it back after.
        if ("text" in event.data) queenMemory.output(event.data.text.length);
      }
      if (page.length >= CATCH_UP_EVENTS || missed) continue;
      // Caught up: what was published during the read follows it (`send` drops repeats).
      const published = waiting;
      waiting = [];
      // A hole among them (the hub publishes in order, so not expected) is read from the store.
      if (!contiguous(published, after)) continue;
      for (const event of published) send(event);
      behind = false;
      if (finishedAtStart) stop();
    }
  };

  /** Catches up unless a catch-up runs already (a hole found while live starts one). */
  let catching: Promise<void> | undefined;
  const kick = async () => {
    if (catching) return await catching;
    catching = catchUp().catch((error) => {
      // The store failed (or closed with the queen): the client resumes with Last-Event-ID.
      console.error(`queen: events of ${id} for a follower:`, error);
      stop();
    }).finally(() => catching = undefined);
    await catching;
  };

  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      stream = controller;
      const waitingHere = () => {
        const size = controller.desiredSize;
        // Errored, or closed and drained (a closed stream's size reads 0 then).
        if (size === null || (closed && size === 0)) {
          streams.delete(waitingHere);
          return 0;
        }
        return Math.max(0, HIGH_WATER - size);
      };
      streams.add(waitingHere);
      forget = () => streams.delete(waitingHere);
      const keepalive = setInterval(() => {
        if (closed) return;
        controller.enqueue(encoder.encode(KEEPALIVE));
        // Counted like a frame's bytes, but not kept to be freed (it is tiny).
        enqueued += KEEPALIVE.length;
        freed += KEEPALIVE.length;
      }, KEEPALIVE_MS);
      stop = () => {
        if (closed) return;
        closed = true;
        clearInterval(keepalive);
        unfollow();
        waiting = [];
        frames.length = 0;
        try {
          controller.close();
        } catch {
          // The client went away first.
        }
      };
    },
    async pull() {
      if (options.freeSent) freeTaken();
      await kick();
    },
    cancel() {
      stop();
      forget();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER }));
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
