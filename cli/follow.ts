/**
 * Following a job's events over Server-Sent Events, resuming with `Last-Event-ID` when the
 * stream drops (a queen restart, a proxy timeout), so no event is missed or printed twice.
 */
import type { RecordedEvent } from "../protocol/mod.ts";
import { RecordedEventSchema, validate } from "../protocol/mod.ts";
import { request } from "./api_client.ts";
import type { ApiTarget } from "./api_client.ts";
import { ApiError } from "./api_client.ts";

/** How many times in a row a dropped stream is resumed before giving up. */
const MAX_RESUMES = 20;

async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  let data: string[] = [];
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (line === "") {
        if (data.length) yield data.join("\n");
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
  }
}

/** Yields the job's events from `after` on, until its final `job:done`. */
export async function* followJob(
  target: ApiTarget,
  id: string,
  after = 0,
): AsyncGenerator<RecordedEvent> {
  let resumes = 0;
  while (true) {
    let response: Response;
    try {
      response = await request(target, `/api/jobs/${encodeURIComponent(id)}/events`, {
        headers: { "last-event-id": String(after), accept: "text/event-stream" },
        stream: true,
      });
    } catch (error) {
      if (error instanceof ApiError && error.status !== 0) throw error;
      if (++resumes > MAX_RESUMES) throw error;
      await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** resumes)));
      continue;
    }
    try {
      for await (const text of sseData(response.body!)) {
        const decoded = validate(RecordedEventSchema, JSON.parse(text));
        if (!decoded.ok) {
          throw new ApiError(`unexpected event from the queen:\n${decoded.error}`, 0);
        }
        const event = decoded.value;
        if (event.n <= after) continue;
        after = event.n;
        resumes = 0;
        yield event;
        if (event.data.event === "job:done") {
          await response.body?.cancel().catch(() => {});
          return;
        }
      }
    } catch (error) {
      if (error instanceof ApiError) throw error;
      // The stream broke: resume after the last event seen.
    }
    if (++resumes > MAX_RESUMES) throw new ApiError("lost the event stream too many times", 0);
    await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** resumes)));
  }
}
