/**
 * `GET /ws/browser`: the dashboard's live channel. A browser sends `job:query-info {id}` and gets
 * `job:info {job, n}` and then that job's events as `browser` frames, numbered after `n`; it sends
 * `overview:follow` and gets `overview` frames whenever drones, the queue or jobs change.
 */
import { MAX_FOLLOWERS_PER_JOB } from "../hub.ts";
import {
  decodeBrowserFrame,
  encodeFrame,
  frameTooLarge,
  MAX_FRAME_BYTES,
} from "../../protocol/mod.ts";
import type { QueenToBrowser, RecordedEvent } from "../../protocol/mod.ts";
import type { OverviewFeed } from "./overview_feed.ts";
import { tailView } from "./output.ts";
import { VIEW_OUTPUT_LIMIT } from "../job_state.ts";
import { ConflictError, InvalidInputError, RejectedError } from "../errors.ts";
import { HANDSHAKE_CLOSE_CODE, HANDSHAKE_MS, TOO_BIG_CLOSE_CODE } from "../http/limits.ts";
import { acceptJob } from "../intake.ts";
import type { QueenCore } from "../queen.ts";
import { tokenMatches } from "../auth.ts";

/** Settings of the browser socket. */
export interface BrowserSocketOptions {
  feed: OverviewFeed;
  /** Bytes a browser may fall behind before it is cut off (it reconnects and catches up). */
  maxBuffered?: number;
  /** Jobs one socket may follow at once. */
  maxJobs?: number;
  /** The socket was opened by a signed-in dashboard page: it may submit jobs. */
  mayAct?: boolean;
  /** Tokens a `queue:new` frame may carry instead. */
  apiTokens?: readonly string[];
  /** Milliseconds the browser has to send its first frame (default `HANDSHAKE_MS`). */
  handshakeMs?: number;
}

/** Close code for a browser cut off for falling behind. */
export const BEHIND_CLOSE_CODE = 4008;

/** Upgrades `request` to the browser socket and serves it. */
export function browserSocket(
  request: Request,
  core: QueenCore,
  options: BrowserSocketOptions,
): Response {
  const maxBuffered = options.maxBuffered ?? 8 * 1024 * 1024;
  const maxJobs = options.maxJobs ?? 16;
  const { socket, response } = Deno.upgradeWebSocket(request);
  const follows = new Map<string, () => void>();
  let unfeed: (() => void) | undefined;
  // A page opens its socket to send a frame at once; one that says nothing holds a connection
  // for nobody, and is closed.
  const handshakeMs = options.handshakeMs ?? HANDSHAKE_MS;
  let heard = false;
  const deadline = setTimeout(() => {
    if (!heard && socket.readyState === WebSocket.OPEN) {
      socket.close(HANDSHAKE_CLOSE_CODE, `send a frame within ${handshakeMs} ms`);
    }
  }, handshakeMs);

  const stop = () => {
    clearTimeout(deadline);
    for (const unfollow of follows.values()) unfollow();
    follows.clear();
    unfeed?.();
    unfeed = undefined;
  };
  const sendText = (text: string) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(text);
    // A browser that cannot keep up would hold the queen's memory hostage: it is cut off, and
    // catches up from the store when it reconnects.
    if (socket.bufferedAmount > maxBuffered) {
      stop();
      socket.close(BEHIND_CLOSE_CODE, "fell too far behind; reconnect to catch up");
    }
  };
  const send = (frame: QueenToBrowser) => sendText(encodeFrame(frame));

  const queryInfo = async (id: string, tail: number | undefined) => {
    let record = await core.job(id);
    // The browser may have gone while the store answered: nothing to follow for it then.
    if (socket.readyState !== WebSocket.OPEN) return;
    if (!record) return send({ event: "error", message: `no job with id '${id}'` });
    follows.get(id)?.();
    follows.delete(id);
    if (follows.size >= maxJobs) {
      return send({ event: "error", message: `follow at most ${maxJobs} jobs on one socket` });
    }
    if (record.view.status !== "done" && core.hub.followers(id) >= MAX_FOLLOWERS_PER_JOB) {
      return send({ event: "error", message: `job '${id}' has too many viewers; try again later` });
    }
    // Followed first: once the hub is ready, every event committed from then on (by this queen
    // or another) reaches the listener. The snapshot is read after that, and the listener passes
    // on only what follows it, so nothing is missed or sent twice.
    let n: number | undefined;
    const early: RecordedEvent[] = [];
    const deliver = (event: RecordedEvent) => {
      if (n === undefined) return void early.push(event);
      if (event.n <= n) return;
      n = event.n;
      send({ event: "browser", type: event.data.event, args: [event] });
      if (event.data.event === "job:done" && core.isFinished(id)) {
        follows.get(id)?.();
        follows.delete(id);
      }
    };
    if (record.view.status !== "done") {
      follows.set(id, core.hub.follow(id, deliver));
      await core.hub.ready(id);
      // This queen's own record needs no second read; another queen's job is read again.
      if (!core.liveJob(id)) record = (await core.job(id)) ?? record;
      if (socket.readyState !== WebSocket.OPEN) return stop();
    }
    n = record.lastN;
    const { job, omitted } = tail
      ? tailView(record.view, tail)
      : { job: record.view, omitted: undefined };
    send({
      event: "job:info",
      id,
      job,
      n,
      ...(omitted ? { omitted } : {}),
      complete: record.viewBytes < VIEW_OUTPUT_LIMIT,
      logBytes: record.logBytes,
    });
    for (const event of early.splice(0)) deliver(event);
  };

  socket.onmessage = async (message) => {
    heard = true;
    // Deno has read the message whole already (it has no size option): refuse it unparsed and
    // close, so that one oversize frame is the most a browser can send.
    if (frameTooLarge(message.data)) {
      stop();
      return socket.close(TOO_BIG_CLOSE_CODE, `frames are limited to ${MAX_FRAME_BYTES} bytes`);
    }
    const decoded = decodeBrowserFrame(message.data);
    if (!decoded.ok) return send({ event: "error", message: decoded.error });
    const frame = decoded.value;
    switch (frame.event) {
      case "job:query-info":
        return queryInfo(frame.id, frame.tail);
      case "overview:follow":
        unfeed ??= options.feed.subscribe(sendText);
        return;
      case "queue:new": {
        if (!options.mayAct && !tokenMatches(frame.token, options.apiTokens ?? [])) {
          return send({ event: "error", message: "queue:new needs the API token: log in first" });
        }
        try {
          return send({
            event: "queue:accepted",
            id: (await acceptJob(core, frame.job, "browser")).id,
          });
        } catch (error) {
          const known = error instanceof InvalidInputError || error instanceof RejectedError ||
            error instanceof ConflictError;
          if (known) return send({ event: "error", message: error.message });
          // A bug: logged, and the browser told no more than that (this handler is async, so a
          // rethrow would be an unhandled rejection that ends the queen).
          console.error("queen: unexpected error:", error);
          return send({ event: "error", message: "internal error" });
        }
      }
    }
  };
  socket.onclose = stop;
  socket.onerror = () => {};
  return response;
}
