/**
 * What a standby queen serves itself instead of forwarding: reads that need only the shared
 * database and the cluster bus. The job list, a job's log and its live event stream (SSE, which
 * `strider logs --follow` reads) come from PostgreSQL, and the events other queens commit reach
 * its streams over LISTEN/NOTIFY (`bus.ts`, `remote_feed.ts`). Everything else (writes, worker
 * sockets, the dashboard) still goes to the serving queen (`forward.ts`).
 */
import { Hono } from "hono";
import type { GuardTokens } from "../http/auth.ts";
import { readGuard } from "../http/auth.ts";
import { onError } from "../http/on_error.ts";
import { Hub } from "../hub.ts";
import { RemoteFeed } from "../remote_feed.ts";
import { mountJobReads } from "../server.ts";
import type { JobViews } from "../sse.ts";
import type { ClusterBus } from "./bus.ts";
import type { PostgresStore } from "./store.ts";

/** Who may read, as on the queen's own server. */
export interface StandbyReadOptions {
  tokens: GuardTokens;
  private: boolean;
}

/** The paths a standby answers itself (GET and HEAD only). */
const LOCAL_READS = /^\/api\/jobs(\/[^/]+\/(log|events))?\/?$/;

/** A standby's own reads; see the module's comment. */
export class StandbyReads {
  readonly hub = new Hub();
  readonly feed: RemoteFeed;
  readonly #app = new Hono();

  /** `store` answers the current pool (a queen that takes over opens a new one). */
  constructor(
    store: () => PostgresStore,
    bus: ClusterBus,
    options: StandbyReadOptions,
    log: (message: string) => void,
  ) {
    this.feed = new RemoteFeed(this.hub, {
      events: (id, after, limit) => store().events(id, after, limit),
      head: (id) => store().head(id),
      heads: (ids) => store().heads(ids),
    }, { log });
    bus.attach(this.feed, this.hub);
    const hub = this.hub;
    const views: JobViews = {
      hub,
      get store() {
        return store();
      },
      job: (id) => store().getJob(id),
      // Nothing is recorded here: a job's `job:done` is its end.
      isFinished: () => true,
    };
    this.#app.onError(onError);
    this.#app.on(["GET", "HEAD"], "/api/*", readGuard(options.tokens, options.private));
    mountJobReads(this.#app, views);
  }

  /** Whether this standby answers `request` itself. */
  handles(request: Request): boolean {
    if (request.method !== "GET" && request.method !== "HEAD") return false;
    if (request.headers.get("upgrade")) return false;
    return LOCAL_READS.test(new URL(request.url).pathname);
  }

  fetch(request: Request): Response | Promise<Response> {
    return this.#app.fetch(request);
  }

  close(): void {
    this.feed.close();
  }
}
