/**
 * A job's merged log: every command's shown line, then its output, in the order produced. Built
 * one event at a time, so the queen appends to the stored log as events arrive and never needs
 * the whole log in memory.
 */
import type { RecordedEvent } from "../protocol/mod.ts";

/** Turns a job's events, in order, into the text each adds to the log. */
export class LogBuilder {
  #attempt = 0;
  #endsWithNewline = true;

  /**
   * Restores a builder whose log last showed `attempt` and ends with a newline or not, as the
   * job's record keeps them (`logAttempt`, `logEndsWithNewline`).
   */
  static resume(attempt: number, endsWithNewline: boolean): LogBuilder {
    const builder = new LogBuilder();
    builder.#attempt = attempt;
    builder.#endsWithNewline = endsWithNewline;
    return builder;
  }

  get attempt(): number {
    return this.#attempt;
  }

  get endsWithNewline(): boolean {
    return this.#endsWithNewline;
  }

  /** The text `event` adds to the log ("" for events that add none). */
  append(event: RecordedEvent["data"]): string {
    let text = "";
    // A header starts on a line of its own even when the output before it had no newline.
    const line = (header: string) => (this.#endsWithNewline ? "" : "\n") + header;
    switch (event.event) {
      case "job:dispatched":
        if (this.#attempt > 0) text = line(`--- attempt ${event.attempt} on ${event.drone} ---\n`);
        this.#attempt = event.attempt;
        break;
      case "job:returned":
        // An attempt that never started showed nothing: the next one needs no header for it.
        if (this.#attempt === event.attempt) this.#attempt = event.attempt - 1;
        break;
      case "job:cmd:start":
        text = line(`$ ${event.screencmd}\n`);
        break;
      case "job:cmd:stdout":
      case "job:cmd:stderr":
      case "job:stdout":
      case "job:stderr":
        text = event.text;
        break;
      case "job:done":
        if (event.error) text = line(`${event.error}\n`);
        break;
    }
    if (text) this.#endsWithNewline = text.endsWith("\n");
    return text;
  }
}

/** The merged log of `events` as one text. */
export function mergedLog(events: readonly RecordedEvent[]): string {
  const builder = new LogBuilder();
  return events.map((e) => builder.append(e.data)).join("");
}
