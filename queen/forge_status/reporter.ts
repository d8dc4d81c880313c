/**
 * Reports webhook jobs' commit statuses to their forge: `pending` when the job is made, then
 * its result when it ends, with a link to the job's page. Sending happens beside the job, never
 * in its way: a forge that is down is retried with backoff, and a later state replaces one not
 * sent yet. What was wanted and what the forge accepted are kept in the database, so a queen
 * restarted mid-report carries on.
 */
import type { DatabaseSync } from "node:sqlite";
import type { JobResult, Project, RecordedEvent, ReportedStatus } from "../../protocol/mod.ts";
import { DEFAULT_FORGE_TOKEN_SECRET } from "../../protocol/mod.ts";
import { type Backoff, backoff } from "../../protocol/backoff.ts";
import type { ProjectStore } from "../projects/store.ts";
import type { JobRecord } from "../store.ts";
import { SqliteStatusRows } from "./rows.ts";
import type { StatusRows } from "./rows.ts";
import { defaultApi, forgeState, statusRequest } from "./requests.ts";
import type { ForgeName, JobState } from "./requests.ts";

/** What the reporter needs of the queen. */
export interface ReporterQueen {
  /** A job by id (the store may answer asynchronously). */
  getJob(id: string): JobRecord | undefined | Promise<JobRecord | undefined>;
  followAll(listener: (event: RecordedEvent) => void): () => void;
  /** The build that made a job (for the build's summary status), if builds are kept. */
  buildOfJob?(id: string): Promise<string | undefined>;
  /** A build's state, for its summary status. */
  getBuild?(id: string): Promise<{ status: string; result: JobResult | null } | undefined>;
  /** Follows the jobs a build gains after it was made (a matrix in `strider.json`). */
  onJobAdded?(listener: (job: string, build: string) => void): () => void;
}

/**
 * Rows of `commit_statuses` for a build's summary (rather than one job) are keyed by this prefix
 * and the build's id: `:` never appears in a job id.
 */
export const BUILD_KEY = "build:";

export interface ReporterOptions {
  /** Where the rows are: the queen's SQLite file (`db`) or any `StatusRows` (PostgreSQL). */
  db?: DatabaseSync;
  rows?: StatusRows;
  projects: ProjectStore;
  queen: ReporterQueen;
  /** The queen's address as people reach it (`--public-url`), for links to job pages. */
  publicUrl: () => string;
  /** Waits before each retry; the default backs off from 2 s to 8 minutes, nine retries. */
  retry?: Backoff;
  fetch?: typeof fetch;
  log?: (message: string) => void;
}

const DEFAULT_RETRY: Backoff = { minMs: 2_000, maxMs: 480_000, tries: 9 };
/** One call's limit: a hanging forge must not hold its loop for ever. */
const REQUEST_TIMEOUT_MS = 30_000;

/** The token and forge API a project reports with, or why it cannot. */
export function reportingOf(
  project: Project,
  forge: ForgeName,
): { ok: true; token: string; api: string; context: string } | { ok: false; error: string } {
  const secret = project.status?.token_secret ?? DEFAULT_FORGE_TOKEN_SECRET;
  const token = project.secrets[secret];
  if (!token) return { ok: false, error: `project ${project.name} has no secret ${secret}` };
  const api = project.status?.api ?? defaultApi(forge, project.repo.url);
  if (!api) {
    return {
      ok: false,
      error: `no forge API address for ${project.repo.url}: set the project's status.api`,
    };
  }
  return { ok: true, token, api, context: project.status?.context ?? "strider" };
}

export class StatusReporter {
  readonly #options: ReporterOptions;
  readonly #retry: Backoff;
  readonly #fetch: typeof fetch;
  /** Jobs whose send loop runs, each with its loop's own token. */
  readonly #running = new Map<string, symbol>();
  readonly #stop = new AbortController();
  readonly #unfollow: () => void;
  readonly #unfollowAdded: () => void;
  readonly #idle = new Set<Promise<void>>();
  /** Jobs kicked while their loop ran: the loop looks again before it ends. */
  readonly #again = new Set<string>();
  readonly #rows: StatusRows;

  constructor(options: ReporterOptions) {
    this.#options = options;
    if (!options.rows && !options.db) throw new TypeError("the reporter needs rows or a db");
    const rows = options.rows ?? new SqliteStatusRows(options.db!);
    this.#rows = rows;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#fetch = options.fetch ?? fetch;
    this.#unfollow = options.queen.followAll((event) => {
      if (event.data.event === "job:done") this.jobEnded(event.data.id);
    });
    this.#unfollowAdded = options.queen.onJobAdded?.((job, build) => {
      this.#later(this.adopt(job, build));
    }) ?? (() => {});
    // Carry on with what a previous run left unsent, and results that ended while it was down.
    this.#later((async () => {
      for (const job of await rows.unsettled()) this.#later(this.#jobEnded(job, true));
    })());
  }

  /**
   * A job ended: its result (and its build's) is reported. The queen calls it for the jobs it
   * ran; with several queens, the queen holding the job's build also calls it once the build
   * took in the end of a job another queen ran (a job reports its build's state, which only
   * that queen holds).
   */
  jobEnded(id: string): void {
    const options = this.#options;
    this.#later(this.#jobEnded(id));
    // The job's end may end its build: its summary status follows.
    const buildOf = options.queen.buildOfJob;
    if (buildOf) {
      this.#later(
        buildOf(id).then(async (build) => {
          if (build === undefined || build === id) return;
          // A job added by strider.json's matrix whose row was not made yet (a queen restarted
          // in between) reports its result all the same.
          await this.adopt(id, build);
          await this.#jobEnded(BUILD_KEY + build);
          // A build that grew from one job (strider.json's matrix) reports under its row.
          await this.#jobEnded(build);
        }),
      );
    }
  }

  /** Keeps `work` (which reads the job from the store) for `close` to wait on. */
  #later(work: Promise<void>): void {
    const done: Promise<void> = work.catch((error) => {
      this.#options.log?.(`forge status: ${(error as Error).message}`);
    }).finally(() => this.#idle.delete(done));
    this.#idle.add(done);
  }

  /**
   * Starts reporting a webhook job: `pending` now, its result when it ends. Jobs of projects
   * without a forge token are not reported.
   */
  async track(
    job: string,
    where: { forge: ForgeName; project: string; sha: string },
  ): Promise<void> {
    // Reporting is on for projects that hold a forge token.
    const project = (await this.#options.projects.get(where.project))?.project;
    const secret = project?.status?.token_secret ?? DEFAULT_FORGE_TOKEN_SECRET;
    if (!project?.secrets[secret]) return;
    await this.#rows.insert(job, where.forge, where.project, where.sha, Date.now());
    this.#kick(job);
    // A job that ended already (the store answers later than the submit) reports its result.
    this.#later(this.#jobEnded(job));
  }

  /**
   * A job added to a build after it was made (strider.json's matrix) reports like the job that
   * planned it, whose id is the build's: same forge, project and commit, `pending` now and its
   * result when it ends, under its own context (`strider/<name>`). The planning job's own row
   * reports the whole build.
   */
  async adopt(job: string, build: string): Promise<void> {
    if (await this.#rows.get(job)) return;
    const plan = await this.#rows.get(build);
    if (!plan) return;
    await this.track(job, { forge: plan.forge as ForgeName, project: plan.project, sha: plan.sha });
  }

  /** What the job's view shows as `reported`, or null for a job that does not report. */
  async view(job: string): Promise<ReportedStatus | null> {
    const row = await this.#rows.get(job);
    if (!row) return null;
    const forge = String(row.forge) as ForgeName;
    return {
      forge,
      commit: String(row.sha),
      // In the forge's own words, as its page shows them.
      state: row.sent === null ? null : forgeState(forge, String(row.sent) as JobState),
      wanted: forgeState(forge, String(row.wanted) as JobState),
      at: row.sent_at === null ? null : new Date(Number(row.sent_at)).toISOString(),
      tries: Number(row.tries),
      error: row.error === null ? null : String(row.error),
    };
  }

  /** Stops following jobs and retrying; resolves when no call is in flight. */
  async close(): Promise<void> {
    this.#unfollow();
    this.#unfollowAdded();
    this.#stop.abort();
    await Promise.all([...this.#idle]);
  }

  /** A job's (or, keyed `build:<id>`, a build's) state now: done with a result, or not. */
  async #stateOf(key: string): Promise<{ done: boolean; result: JobResult | null } | undefined> {
    if (key.startsWith(BUILD_KEY)) {
      const build = await this.#options.queen.getBuild?.(key.slice(BUILD_KEY.length));
      return build && { done: build.status === "done", result: build.result };
    }
    // A job that is a build of one reports its build's state: the same, unless the job was the
    // plan of a build its repository's strider.json asked for, which ends with the whole build.
    const getBuild = this.#options.queen.getBuild;
    const build = getBuild ? await getBuild(key) : undefined;
    if (build) return { done: build.status === "done", result: build.result };
    const record = await this.#options.queen.getJob(key);
    return record && { done: record.view.status === "done", result: record.view.result };
  }

  async #jobEnded(job: string, resume = false): Promise<void> {
    const state = await this.#stateOf(job);
    if (!state || !await this.#rows.get(job)) return;
    if (state.done && state.result) {
      // A new state gets the full round of retries.
      await this.#rows.want(job, state.result);
    } else if (!resume) return;
    this.#kick(job);
  }

  /** Runs the job's send loop unless one runs already (it will see the newest wanted state). */
  #kick(job: string): void {
    if (this.#stop.signal.aborted) return;
    if (this.#running.has(job)) {
      this.#again.add(job);
      return;
    }
    const token = Symbol(job);
    this.#running.set(job, token);
    const loop = this.#loop(job, token).catch((error) => {
      this.#options.log?.(`status of job ${job}: ${(error as Error).message}`);
    }).finally(() => {
      if (this.#running.get(job) === token) this.#running.delete(job);
      this.#idle.delete(loop);
    });
    this.#idle.add(loop);
  }

  async #loop(job: string, token: symbol): Promise<void> {
    const note = (tries: number, error: string | null) => this.#rows.note(job, tries, error);
    while (!this.#stop.signal.aborted) {
      this.#again.delete(job);
      const row = await this.#rows.get(job);
      if (!row || row.sent === row.wanted) {
        // A state wanted while the row was read: read again.
        if (this.#again.has(job)) continue;
        // At once, not when the promise settles: a state wanted from now starts a new loop.
        if (this.#running.get(job) === token) this.#running.delete(job);
        return;
      }
      const wanted = String(row.wanted) as JobState;
      const forge = String(row.forge) as ForgeName;
      const stored = await this.#options.projects.get(String(row.project));
      if (!stored) return void await note(Number(row.tries), `project ${row.project} is gone`);
      const how = reportingOf(stored.project, forge);
      if (!how.ok) return void await note(Number(row.tries), how.error);
      // A build's summary links its page under the project's context; each job of a build of
      // several reports under its own context (`strider/node-20`).
      const summary = job.startsWith(BUILD_KEY);
      const name = summary ? undefined : (await this.#options.queen.getJob(job))?.spec?.build?.name;
      const page = summary
        ? `builds/${encodeURIComponent(job.slice(BUILD_KEY.length))}`
        : `jobs/${encodeURIComponent(job)}`;
      const request = statusRequest(forge, {
        api: how.api,
        repo: stored.project.name,
        sha: String(row.sha),
        token: how.token,
        state: wanted,
        targetUrl: `${this.#options.publicUrl().replace(/\/+$/, "")}/${page}`,
        context: name ? `${how.context}/${name}` : how.context,
      });
      const tries = Number(row.tries) + 1;
      let retry: boolean;
      let error: string;
      try {
        const response = await this.#fetch(request.url, {
          method: request.method,
          headers: request.headers,
          body: JSON.stringify(request.body),
          signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
        });
        const text = (await response.text()).replaceAll(how.token, "***").slice(0, 300);
        if (response.ok) {
          await this.#rows.sent(job, wanted, Date.now());
          continue;
        }
        retry = response.status === 429 || response.status >= 500;
        error = `${forge} answered ${response.status} to ${wanted}: ${text}`;
      } catch (e) {
        if (this.#stop.signal.aborted) return;
        retry = true;
        error = `${forge} could not be reached for ${wanted}: ${(e as Error).message}`;
      }
      await note(tries, error);
      this.#options.log?.(`status of job ${job}: ${error}${retry ? "; retrying" : ""}`);
      const delay = backoff(tries - 1, this.#retry);
      if (!retry || delay === undefined) {
        if (this.#again.has(job)) continue;
        return;
      }
      await sleep(delay, this.#stop.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
