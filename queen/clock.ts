/**
 * The time source of the queen's core: the wall clock and its timers, injected so that tests of
 * leases and deadlines advance a fake clock instead of sleeping.
 */

/** An opaque timer handle of a `Clock`. */
export type TimerId = number;

/** What the queen's core asks of time. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `callback` once after `ms`. */
  setTimeout(callback: () => void, ms: number): TimerId;
  clearTimeout(timer: TimerId | undefined): void;
  /** Runs `callback` every `ms`. */
  setInterval(callback: () => void, ms: number): TimerId;
  clearInterval(timer: TimerId | undefined): void;
}

/** The real clock. (Deno's timers are numbers; node's typings say otherwise.) */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms) as unknown as TimerId,
  clearTimeout: (timer) => clearTimeout(timer),
  setInterval: (callback, ms) => setInterval(callback, ms) as unknown as TimerId,
  clearInterval: (timer) => clearInterval(timer),
};

interface FakeTimer {
  due: number;
  every?: number;
  callback: () => void;
}

/**
 * A clock that moves only when told (`advance`), running the timers that fall due in order.
 * For tests: a 60 s lease runs out in no time and no assertion depends on the machine's speed.
 */
export class FakeClock implements Clock {
  #now: number;
  #next = 1;
  #timers = new Map<TimerId, FakeTimer>();

  constructor(start = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(id, { due: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(timer: TimerId | undefined): void {
    if (timer !== undefined) this.#timers.delete(timer);
  }

  setInterval(callback: () => void, ms: number): TimerId {
    const id = this.#next++;
    const every = Math.max(1, ms);
    this.#timers.set(id, { due: this.#now + every, every, callback });
    return id;
  }

  clearInterval(timer: TimerId | undefined): void {
    this.clearTimeout(timer);
  }

  /** Moves time on by `ms`, running every timer due on the way, earliest first. */
  advance(ms: number): void {
    const end = this.#now + ms;
    while (true) {
      let nextId: TimerId | undefined;
      let next: FakeTimer | undefined;
      for (const [id, timer] of this.#timers) {
        if (timer.due <= end && (!next || timer.due < next.due)) [nextId, next] = [id, timer];
      }
      if (!next || nextId === undefined) break;
      this.#now = next.due;
      if (next.every) next.due += next.every;
      else this.#timers.delete(nextId);
      next.callback();
    }
    this.#now = end;
  }
}
