/**
 * The queen's lease and retry rules as pure decisions: given what is known of an attempt and the
 * time, what happens next. `QueenCore` only carries them out (timers, frames, recording), so the
 * rules are tested with plain numbers, no sockets and no sleeping.
 */

/** Milliseconds left of a lease last renewed at `lastSeen`; 0 once it ran out. */
export function leaseLeft(lastSeen: number, leaseMs: number, now: number): number {
  return Math.max(0, leaseMs - (now - lastSeen));
}

/** Whether a drone (or attempt) silent since `lastSeen` is past its lease. */
export function expired(lastSeen: number, leaseMs: number, now: number): boolean {
  return now - lastSeen > leaseMs;
}

/** What the queen knows of a job whose attempt was lost (its drone gone past the lease). */
export interface LostAttempt {
  /** A cancel was asked for while it ran. */
  cancelRequested: boolean;
  /** Seconds the job may run; undefined: no limit. */
  timeout: number | undefined;
  /** When the lost attempt started, on the queen's clock; undefined if unknown. */
  startedAt: number | undefined;
  /** Attempts that started so far (one that only waited at a drone is not charged). */
  charged: number;
  maxAttempts: number;
}

/** What happens to a job whose attempt was lost. */
export type AfterLoss =
  | { next: "cancel" }
  | { next: "timeout"; timeout: number }
  | { next: "lose" }
  | { next: "retry" };

/** The rule for a lost attempt: a cancel wins, then the job's timeout, then its attempts left. */
export function afterLoss(job: LostAttempt, now: number): AfterLoss {
  if (job.cancelRequested) return { next: "cancel" };
  if (job.timeout && job.startedAt !== undefined && now > job.startedAt + job.timeout * 1000) {
    return { next: "timeout", timeout: job.timeout };
  }
  if (job.charged >= job.maxAttempts) return { next: "lose" };
  return { next: "retry" };
}

/** What the queen watches of a started job. */
export interface StartedAttempt {
  startedAt: number;
  /** When its worker last said something of it. */
  lastHeard: number;
  /** Seconds it may run; undefined: no limit. */
  timeout: number | undefined;
  /** When the queen asked it to stop (timeout or cancel); undefined: not asked. */
  stopAskedAt: number | undefined;
  /** Whether a connected drone holds it. */
  held: boolean;
}

/** What the queen does about a started job now. */
export type DeadlineStep =
  | { step: "none" }
  | { step: "ask-stop" }
  | { step: "end-timeout"; timeout: number }
  | { step: "end-cancelled" };

/**
 * The queen's own watch over a started job whose worker may have gone silent about it: past its
 * timeout the worker is asked to stop it; a lease later, if the worker still said nothing of it,
 * the queen ends it `timeout`. A cancel left unanswered for a lease ends it `cancelled`.
 */
export function deadlineStep(job: StartedAttempt, leaseMs: number, now: number): DeadlineStep {
  const silent = expired(job.lastHeard, leaseMs, now);
  if (job.timeout && now > job.startedAt + job.timeout * 1000) {
    if (job.stopAskedAt === undefined) return { step: "ask-stop" };
    if (now > job.startedAt + job.timeout * 1000 + leaseMs && silent) {
      return { step: "end-timeout", timeout: job.timeout };
    }
    return { step: "none" };
  }
  if (job.stopAskedAt !== undefined && now > job.stopAskedAt + leaseMs && silent && job.held) {
    return { step: "end-cancelled" };
  }
  return { step: "none" };
}

/** Whether a job queued since `since` is past `--queue-timeout` (`limitMs`; 0: never). */
export function queueTimedOut(since: number, limitMs: number, now: number): boolean {
  return limitMs > 0 && now - since > limitMs;
}
