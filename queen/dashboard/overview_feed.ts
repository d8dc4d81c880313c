/**
 * The overview as a feed: browsers that follow it get it at once and again whenever drones, the
 * queue or recent jobs change. One feed serves every follower, so the work does not grow with
 * the number of open dashboards.
 */
import { encodeFrame } from "../../protocol/mod.ts";
import type { QueenCore } from "../queen.ts";
import { overviewOf } from "./overview_data.ts";

/** Receives the `overview` frame, encoded. */
export type OverviewListener = (frame: string) => void;

/** Settings of an `OverviewFeed`. */
export interface OverviewFeedOptions {
  /** How often the overview is recomputed while someone follows it (drones send no events). */
  pollMs?: number;
  /** How soon after a job event the overview is recomputed. */
  settleMs?: number;
}

/** Pushes `overview` frames to its listeners when what they show changes. */
export class OverviewFeed {
  readonly #core: QueenCore;
  readonly #pollMs: number;
  readonly #settleMs: number;
  readonly #listeners = new Set<OverviewListener>();
  #last = "";
  #poll: ReturnType<typeof setInterval> | undefined;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #unfollow: (() => void) | undefined;

  constructor(core: QueenCore, options: OverviewFeedOptions = {}) {
    this.#core = core;
    this.#pollMs = options.pollMs ?? 1000;
    this.#settleMs = options.settleMs ?? 150;
  }

  /** Sends the current overview to `listener`, then every change; returns the unsubscribe. */
  subscribe(listener: OverviewListener): () => void {
    if (this.#listeners.size === 0) {
      this.#poll = setInterval(() => this.#refresh(), this.#pollMs);
      // Any job's change, recorded here or (over the cluster bus) by another queen.
      this.#unfollow = this.#core.hub.onChange(() => {
        this.#soon ??= setTimeout(() => this.#refresh(), this.#settleMs);
      });
    }
    // Those already following hear of any change too; the new one gets the frame either way.
    this.#listeners.add(listener);
    void this.#refresh(listener);
    return () => {
      if (!this.#listeners.delete(listener) || this.#listeners.size > 0) return;
      clearInterval(this.#poll);
      clearTimeout(this.#soon);
      this.#soon = undefined;
      this.#unfollow?.();
      this.#last = "";
    };
  }

  async #refresh(fresh?: OverviewListener): Promise<void> {
    clearTimeout(this.#soon);
    this.#soon = undefined;
    let overview;
    try {
      overview = await overviewOf(this.#core);
    } catch {
      return; // The store is closing (the queen is shutting down): the next poll tries again.
    }
    const frame = encodeFrame({ event: "overview", ...overview });
    if (frame === this.#last) {
      if (fresh && this.#listeners.has(fresh)) fresh(frame);
      return;
    }
    this.#last = frame;
    for (const listener of [...this.#listeners]) listener(frame);
  }
}
