import type { RecordedEvent } from "../protocol/mod.ts";
import type { QueenCore } from "./queen.ts";

const encoder = new TextEncoder();
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/**
 * Bytes a follower may fall behind before its stream is closed (it resumes from its last event
 * id). Counted in bytes, not events: output events are up to a megabyte each.
 */
const MAX_BEHIND_BYTES = 32 * 1024 * 1024;

function frame(event: RecordedEvent): Uint8Array {
  return encoder.encode(
    `id: ${event.n}\nevent: ${event.data.event}\ndata: ${JSON.stringify(event)}\n\n`,
  );
}

/**
 * A Server-Sent Events response with a job's events after `after`: first those recorded, then
 * live ones; it ends after the job's final event.
 */
export function jobEventStream(core: QueenCore, id: string, after: number): Response {
  let stop = () => {};
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      let closed = false;
      const keepalive = setInterval(() => {
        if (!closed) controller.enqueue(encoder.encode(": keepalive\n\n"));
      }, KEEPALIVE_MS);
      stop = () => {
        if (closed) return;
        closed = true;
        clearInterval(keepalive);
        unfollow();
        try {
          controller.close();
        } catch {
          // The client went away first.
        }
      };
      const send = (event: RecordedEvent) => {
        if (closed || event.n <= after) return;
        after = event.n;
        controller.enqueue(frame(event));
        // A follower this far behind would hold the queen's memory hostage; it is cut off and
        // can resume from its last event id.
        if ((controller.desiredSize ?? 0) < -MAX_BEHIND_BYTES) return stop();
        if (event.data.event === "job:done" && core.isFinished(id)) stop();
      };
      // Following before replaying leaves no gap between the two: what is published while the
      // store is read waits, and goes out after the stored events (`send` drops repeats).
      let waiting: RecordedEvent[] | undefined = [];
      const unfollow = core.hub.follow(id, (event) => waiting ? waiting.push(event) : send(event));
      const stored = await core.store.events(id, after);
      const live = waiting;
      waiting = undefined;
      for (const event of [...stored, ...live]) send(event);
      if (core.isFinished(id)) stop();
    },
    cancel() {
      stop();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }));
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
