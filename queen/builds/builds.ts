/**
 * Builds: the jobs one trigger makes, followed to one outcome. Every submit becomes a build here
 * (a plain job is a build of one, under its own id). The jobs themselves are ordinary jobs of the
 * core; this follows their `job:done` events to keep each build's results, cancels the rest on a
 * fail-fast failure, and makes re-runs (whole, or of the failed jobs only). It keeps the running
 * builds in memory, writes each change through the `BuildStore`, and picks running builds up
 * again after a restart.
 * @module
 */
import type {
  BuildInfo,
  BuildJobView,
  BuildResult,
  BuildSummary,
  BuildView,
  FanOut,
  JobResult,
  JobSpec,
  Submitted,
} from "../../protocol/mod.ts";
import { hex } from "../../protocol/hex.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../errors.ts";
import type { QueenCore } from "../queen.ts";
import type { JobRecord } from "../store.ts";
import { planBuild } from "./expand.ts";
import type { BuildFilter, BuildJobEntry, BuildRecord, BuildStore } from "./store.ts";
import { junitTimings } from "./timings.ts";

/** What the builds need of the core. */
export type BuildCore = Pick<QueenCore, "submit" | "cancel" | "job" | "liveJob" | "hub" | "store">;

export interface BuildsOptions {
  log?: (message: string) => void;
  /** With several queens: asks the queen following a running build to cancel it. */
  cancelElsewhere?: (id: string) => Promise<boolean>;
  /** The JUnit XML reports among a finished job's artifacts, for per-file timings. */
  reports?: (jobId: string) => Promise<string[]>;
  now?: () => number;
}

/** Timings a sharded build takes from earlier runs (the most recently updated files). */
const TIMINGS_PER_BUILD = 4000;
/** Ids of a build's jobs add `.name` to the build's: room is kept for at least `.NNN`. */
const MAX_MULTI_BUILD_ID = 56;

function newBuildId(): string {
  return Date.now().toString(36) + "-" + hex(crypto.getRandomValues(new Uint8Array(4)));
}

/** A build's outcome once every job is final; null while some job runs. */
export function outcomeOf(build: BuildRecord): BuildResult | null {
  if (build.jobs.some((j) => j.result === null)) return null;
  if (build.jobs.every((j) => j.allowFailure || j.result === "passed")) return "passed";
  return build.cancelled ? "cancelled" : "failed";
}

function entryOf(id: string, build: BuildInfo | undefined): BuildJobEntry {
  return {
    id,
    name: build?.name ?? "job",
    ...(build?.matrix ? { matrix: build.matrix } : {}),
    ...(build?.shard ? { shard: build.shard } : {}),
    allowFailure: build?.allow_failure ?? false,
    result: null,
  };
}

export class Builds {
  readonly store: BuildStore;
  readonly #core: BuildCore;
  readonly #options: BuildsOptions;
  /** Running builds by id: the one copy of each, changed only here. */
  readonly #live = new Map<string, BuildRecord>();
  /** Builds just ended whose end is not saved yet: views read them here meanwhile. */
  readonly #ending = new Map<string, BuildRecord>();
  /** Unfinished job id → the running build it belongs to. */
  readonly #jobBuild = new Map<string, string>();
  #writes: Promise<void> = Promise.resolve();
  readonly #listeners = new Set<(build: BuildRecord) => void>();
  readonly #added = new Set<(job: string, build: string) => void>();
  readonly #unfollow: () => void;

  constructor(core: BuildCore, store: BuildStore, options: BuildsOptions = {}) {
    this.#core = core;
    this.store = store;
    this.#options = options;
    this.#unfollow = core.hub.followAll((event) => {
      const data = event.data;
      if (data.event !== "job:done") return;
      const fanOut = "fan_out" in data ? data.fan_out : undefined;
      const made = fanOut && data.result === "passed" ? this.#fanOut(data.id, fanOut) : true;
      this.#jobDone(data.id, made ? data.result : "errored");
    });
  }

  /** Builds over `store`, going on with the builds a previous queen left running. */
  static async open(core: BuildCore, store: BuildStore, options: BuildsOptions = {}) {
    const builds = new Builds(core, store, options);
    for (const build of await store.runningBuilds()) await builds.#follow(build);
    return builds;
  }

  /**
   * Follows running builds another queen followed (it died): as at a start, the jobs that ended
   * meanwhile are counted.
   */
  async adopt(ids: string[]): Promise<void> {
    for (const id of ids) {
      if (this.#live.has(id)) continue;
      const build = await this.store.getBuild(id);
      if (build?.status === "running") await this.#follow(build);
    }
  }

  async #follow(build: BuildRecord): Promise<void> {
    this.#track(build);
    for (const entry of build.jobs.filter((j) => j.result === null)) {
      const job = await this.#core.job(entry.id);
      if (!job) this.#jobDone(entry.id, "lost");
      else if (job.view.status === "done") this.#jobDone(entry.id, job.view.result ?? "lost");
    }
  }

  /**
   * A job ended that this queen may not own (several queens: it ran on another's drone), so its
   * `job:done` was not published here: read from the store, it counts for its build. Whether
   * it did (this queen holds the build).
   */
  async jobEnded(jobId: string): Promise<boolean> {
    if (!this.#jobBuild.has(jobId) || this.#core.liveJob(jobId)) return false;
    const job = await this.#core.job(jobId);
    if (job?.view.status !== "done") return false;
    const result = job.view.result ?? "lost";
    const build = this.#live.get(this.#jobBuild.get(jobId) ?? "");
    if (result === "passed" && build?.jobs.length === 1 && build.id === jobId) {
      // A plan job: its strider.json may ask for a build. The queen it ran on queues the jobs;
      // this one adds them to the build (planned alike: the plan needs no secrets).
      const [last] = await this.#core.store.events(jobId, job.lastN - 1);
      if (last?.data.event === "job:done" && "fan_out" in last.data && last.data.fan_out) {
        if (!this.#addFanOut(build, job.spec, last.data.fan_out)) {
          this.#jobDone(jobId, "errored");
          return true;
        }
        this.#jobDone(jobId, result);
        // Those that ended before they were added count now.
        for (const entry of build.jobs.slice(1)) {
          const made = await this.#core.job(entry.id);
          if (made?.view.status === "done") this.#jobDone(entry.id, made.view.result ?? "lost");
        }
        return true;
      }
    }
    this.#jobDone(jobId, result);
    return true;
  }

  /** Stops following jobs and waits for pending writes. */
  async close(): Promise<void> {
    this.#unfollow();
    await this.#writes;
  }

  /**
   * Calls `listener` for each job a build gains after it was made (its repository's
   * `strider.json` asked for a matrix), once the job is queued.
   */
  onJobAdded(listener: (job: string, build: string) => void): () => void {
    this.#added.add(listener);
    return () => this.#added.delete(listener);
  }

  /** Calls `listener` after each change of a build. */
  onChange(listener: (build: BuildRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Queues `spec` as a build: one job, or one per matrix combination and shard. Throws the
   * intake's domain errors (`InvalidInputError` for a matrix past its limits, `ConflictError`
   * for a taken id).
   */
  async submit(
    spec: JobSpec,
    links: { retryOf?: string } = {},
    carried?: BuildInfo,
  ): Promise<Submitted> {
    const several = !!spec.matrix || !!spec.parallelism;
    const buildId = spec.job_id ?? newBuildId();
    if (several && buildId.length > MAX_MULTI_BUILD_ID) {
      throw new InvalidInputError(
        `job_id: a build of several jobs takes an id of at most ${MAX_MULTI_BUILD_ID} ` +
          "characters (its jobs' ids add their names to it)",
      );
    }
    const timings = (spec.parallelism ?? 1) > 1
      ? await this.store.timings(spec.repo.url, TIMINGS_PER_BUILD)
      : {};
    const plan = planBuild(spec, buildId, timings);
    const build = this.#newBuild(buildId, spec, plan.axes, spec.fail_fast ?? false, null);
    build.jobs = plan.jobs.map((job) => entryOf(job.id, several ? job.build : carried));
    if (!several) {
      // A build of one: the job's id decides (a taken id is the job's conflict, as before). A
      // job of a build re-run alone keeps its name, matrix values and shard in a build of its own.
      const { timings: _stale, ...kept } = carried ?? {};
      const record = await this.#core.submit({
        ...plan.jobs[0].spec,
        job_id: buildId,
        ...(carried ? { build: { ...kept, name: carried.name, id: buildId } } : {}),
      }, links);
      this.#track(build);
      await this.store.createBuild(build).catch((error) => {
        this.#options.log?.(`build ${buildId}: not stored: ${(error as Error).message}`);
      });
      this.#changed(build);
      return { id: record.id, status: record.view.status, build: buildId, jobs: [record.id] };
    }
    try {
      await this.store.createBuild(build);
    } catch (error) {
      if (error instanceof RangeError) {
        throw new ConflictError(`build id '${buildId}' is already taken`);
      }
      throw error;
    }
    this.#track(build);
    return await this.#submitAll(build, plan.jobs.map((j) => ({ spec: j.spec, links })));
  }

  /** Submits a new build's jobs in order; if one is refused, the others are cancelled. */
  async #submitAll(
    build: BuildRecord,
    jobs: { spec: JobSpec; links: { retryOf?: string } }[],
  ): Promise<Submitted> {
    const ids: string[] = [];
    let first: JobRecord | undefined;
    for (const job of jobs) {
      try {
        const record = await this.#core.submit(job.spec, job.links);
        first ??= record;
        ids.push(record.id);
      } catch (error) {
        build.cancelled = true;
        for (const entry of build.jobs) {
          if (entry.result !== null) continue;
          if (ids.includes(entry.id)) this.#core.cancel(entry.id);
          else this.#jobDone(entry.id, "errored");
        }
        throw error;
      }
    }
    this.#changed(build);
    const carried = build.jobs.filter((j) => !ids.includes(j.id)).map((j) => j.id);
    return {
      id: first?.id ?? ids[0],
      status: first?.view.status ?? "queued",
      build: build.id,
      jobs: [...ids, ...carried],
    };
  }

  #newBuild(
    id: string,
    spec: JobSpec,
    axes: BuildRecord["axes"],
    failFast: boolean,
    rerunOf: string | null,
  ): BuildRecord {
    return {
      id,
      createdAt: this.#now(),
      finishedAt: null,
      status: "running",
      result: null,
      repo: spec.repo.url,
      branch: "branch" in spec.ref ? spec.ref.branch : null,
      failFast,
      cancelled: false,
      rerunOf,
      axes,
      jobs: [],
    };
  }

  /** Cancels every unfinished job of a running build; false when it had already finished. */
  async cancel(id: string): Promise<boolean> {
    const build = this.#live.get(id);
    if (!build) {
      const stored = await this.store.getBuild(id);
      if (!stored) throw new NotFoundError(`no build with id '${id}'`);
      // Followed by another queen: cancelled there.
      if (stored.status === "running" && this.#options.cancelElsewhere) {
        return await this.#options.cancelElsewhere(id);
      }
      return false;
    }
    build.cancelled = true;
    this.#changed(build);
    for (const entry of build.jobs) if (entry.result === null) this.#core.cancel(entry.id);
    return true;
  }

  /**
   * Runs a finished build again as a new build: every job, or only those that did not pass (the
   * passed ones are carried into the new build as they are). `specOf` gives a finished job's
   * spec to submit again (with its secrets, see `rerun.ts`).
   */
  async rerun(
    id: string,
    failedOnly: boolean,
    specOf: (record: JobRecord) => JobSpec | Promise<JobSpec>,
  ): Promise<Submitted> {
    const old = await this.store.getBuild(id);
    if (!old) throw new NotFoundError(`no build with id '${id}'`);
    if (this.#live.has(id) || old.status !== "done") {
      throw new ConflictError(`build '${id}' is still running: wait for it or cancel it first`);
    }
    const again = old.jobs.filter((j) => !failedOnly || j.result !== "passed");
    if (!again.length) throw new ConflictError(`build '${id}' has no failed jobs to re-run`);
    const newId = newBuildId();
    const several = old.jobs.length > 1 || old.jobs[0].id !== old.id;
    const jobs: { spec: JobSpec; links: { retryOf?: string } }[] = [];
    let base: JobSpec | undefined;
    for (const entry of again) {
      const record = await this.#core.job(entry.id);
      if (!record) {
        throw new ConflictError(
          `job '${entry.id}' of build '${id}' is no longer kept: submit the build again`,
        );
      }
      const { job_id: _old, build: info, ...spec } = await specOf(record);
      base ??= spec;
      const jobId = several ? `${newId}.${entry.name}` : newId;
      jobs.push({
        spec: {
          ...spec,
          job_id: jobId.length <= 64 ? jobId : `${newId}.${jobs.length + 1}`,
          ...(info ? { build: { ...info, id: newId } } : {}),
        },
        links: { retryOf: entry.id },
      });
    }
    const build = this.#newBuild(newId, base!, old.axes, old.failFast, old.id);
    build.repo = old.repo;
    build.branch = old.branch;
    const ids = new Map(again.map((entry, i) => [entry.id, jobs[i].spec.job_id!]));
    build.jobs = old.jobs.map((entry) =>
      ids.has(entry.id) ? { ...entry, id: ids.get(entry.id)!, result: null } : { ...entry }
    );
    await this.store.createBuild(build);
    this.#track(build);
    // Carried jobs are final already: a re-run of failed jobs whose others passed can end alone.
    if (outcomeOf(build)) this.#changed(build);
    return await this.#submitAll(build, jobs);
  }

  /** A build with its jobs' current state, or undefined. */
  async view(id: string): Promise<BuildView | undefined> {
    const build = this.#live.get(id) ?? this.#ending.get(id) ?? await this.store.getBuild(id);
    if (!build) return undefined;
    const jobs = await Promise.all(build.jobs.map((entry) => this.#jobView(entry)));
    return { ...this.#summaryBase(build), axes: build.axes, jobs };
  }

  /** One page of builds, newest first. */
  async list(filter: BuildFilter): Promise<{ builds: BuildSummary[]; next: string | null }> {
    const page = await this.store.listBuilds(filter);
    return {
      builds: page.records.map((stored) => {
        const build = this.#live.get(stored.id) ?? this.#ending.get(stored.id) ?? stored;
        return {
          ...this.#summaryBase(build),
          jobs: build.jobs.length,
          passed: build.jobs.filter((j) => j.result === "passed").length,
        };
      }),
      next: page.next,
    };
  }

  /** The build a job belongs to (the one that made it). */
  async buildOfJob(jobId: string): Promise<string | undefined> {
    return this.#jobBuild.get(jobId) ?? await this.store.buildOfJob(jobId);
  }

  #summaryBase(build: BuildRecord) {
    return {
      id: build.id,
      status: build.status,
      result: build.result,
      repo: build.repo,
      branch: build.branch,
      fail_fast: build.failFast,
      createdAt: new Date(build.createdAt).toISOString(),
      finishedAt: build.finishedAt === null ? null : new Date(build.finishedAt).toISOString(),
      rerunOf: build.rerunOf,
    };
  }

  async #jobView(entry: BuildJobEntry): Promise<BuildJobView> {
    const record = this.#core.liveJob(entry.id) ?? await this.#core.job(entry.id);
    return {
      id: entry.id,
      name: entry.name,
      ...(entry.matrix ? { matrix: entry.matrix } : {}),
      ...(entry.shard ? { shard: entry.shard } : {}),
      allow_failure: entry.allowFailure,
      status: entry.result !== null ? "done" : record?.view.status ?? "queued",
      result: entry.result ?? record?.view.result ?? null,
      drone: record?.view.drone ?? null,
    };
  }

  #track(build: BuildRecord): void {
    this.#live.set(build.id, build);
    for (const entry of build.jobs) {
      if (entry.result === null) this.#jobBuild.set(entry.id, build.id);
    }
  }

  #jobDone(jobId: string, result: JobResult): void {
    const buildId = this.#jobBuild.get(jobId);
    const build = buildId === undefined ? undefined : this.#live.get(buildId);
    const entry = build?.jobs.find((j) => j.id === jobId);
    if (!build || !entry || entry.result !== null) return;
    this.#jobBuild.delete(jobId);
    entry.result = result;
    if (build.jobs.length > 1) this.#keepTimings(build, jobId);
    if (result !== "passed" && !entry.allowFailure && build.failFast) {
      // Fail fast: the others stop now (a running job runs its cleanup first).
      for (const other of build.jobs) {
        if (other.result === null) this.#core.cancel(other.id);
      }
    }
    this.#changed(build);
  }

  /**
   * A job whose repository's `strider.json` asks for a build (`matrix`, `parallelism`) ran
   * nothing and reports the request: its build of one gains the jobs it asks for, on the commit
   * that job fetched. Runs before the job's own end is counted, so the build stays running.
   */
  #fanOut(jobId: string, fanOut: FanOut): boolean {
    const build = this.#live.get(this.#jobBuild.get(jobId) ?? "");
    const record = this.#core.liveJob(jobId);
    if (!record) return true;
    if (!build) {
      // Several queens: the plan job ran here and another queen follows its build. That queen
      // adds the jobs to the build; they are made here, where the plan job's secrets are.
      if (this.#options.cancelElsewhere && !record.spec.build) {
        const spec = this.#fanOutSpec(jobId, record.spec, fanOut);
        if (spec) this.#submitFanOut(jobId, spec);
      }
      return true;
    }
    if (build.jobs.length !== 1 || build.id !== jobId) return true;
    const spec = this.#addFanOut(build, record.spec, fanOut);
    if (!spec) return false;
    this.#submitFanOut(build.id, spec);
    return true;
  }

  /** The spec of the build a plan job's strider.json asks for, or undefined (logged). */
  #fanOutSpec(planId: string, planSpec: JobSpec, fanOut: FanOut): JobSpec | undefined {
    const { job_id: _id, build: _build, ...base } = planSpec;
    const { commit, ...wanted } = fanOut;
    const ref = "branch" in base.ref && commit ? { ...base.ref, id: commit } : base.ref;
    const spec: JobSpec = { ...base, ...wanted, ref };
    try {
      if (planId.length > MAX_MULTI_BUILD_ID) {
        throw new InvalidInputError(`the job id is over ${MAX_MULTI_BUILD_ID} characters`);
      }
      planBuild(spec, planId);
      return spec;
    } catch (error) {
      this.#options.log?.(
        `job ${planId}: strider.json asks for a build that cannot be made: ${
          (error as Error).message
        }`,
      );
      return undefined;
    }
  }

  /** Adds the jobs a plan job's strider.json asks for to its build; their spec, or undefined. */
  #addFanOut(build: BuildRecord, planSpec: JobSpec, fanOut: FanOut): JobSpec | undefined {
    const spec = this.#fanOutSpec(build.id, planSpec, fanOut);
    if (!spec) return undefined;
    const plan = planBuild(spec, build.id);
    build.jobs[0].name = "plan";
    build.axes = plan.axes;
    build.failFast = spec.fail_fast ?? false;
    for (const job of plan.jobs) {
      build.jobs.push(entryOf(job.id, job.build));
      this.#jobBuild.set(job.id, build.id);
    }
    this.#options.log?.(
      `job ${build.id}: strider.json makes build ${build.id} of ${plan.jobs.length} jobs`,
    );
    return spec;
  }

  /** Queues the jobs of a fanned-out build (`spec` with the plan job's secrets). */
  #submitFanOut(buildId: string, spec: JobSpec): void {
    const submitting = (async () => {
      const timings = (spec.parallelism ?? 1) > 1
        ? await this.store.timings(spec.repo.url, TIMINGS_PER_BUILD)
        : {};
      for (const job of planBuild(spec, buildId, timings).jobs) {
        try {
          await this.#core.submit(job.spec, {});
          for (const listener of this.#added) listener(job.id, buildId);
        } catch (error) {
          this.#options.log?.(`job ${job.id}: not queued: ${(error as Error).message}`);
          this.#jobDone(job.id, "errored");
        }
      }
    })();
    this.#writes = this.#writes.then(() => submitting);
  }

  /** Saves a build after a change, ending it when every job is final. */
  #changed(build: BuildRecord): void {
    const outcome = outcomeOf(build);
    const copy = structuredClone(build);
    if (outcome && build.status === "running") {
      copy.status = build.status = "done";
      copy.result = build.result = outcome;
      copy.finishedAt = build.finishedAt = this.#now();
      this.#live.delete(build.id);
      this.#ending.set(build.id, copy);
      this.#options.log?.(`build ${build.id} ${outcome}`);
    }
    this.#writes = this.#writes.then(() => this.store.saveBuild(copy)).catch((error) => {
      this.#options.log?.(`build ${build.id}: not saved: ${(error as Error).message}`);
    }).finally(() => {
      if (this.#ending.get(build.id) === copy) this.#ending.delete(build.id);
    });
    for (const listener of this.#listeners) {
      try {
        listener(copy);
      } catch {
        this.#listeners.delete(listener);
      }
    }
  }

  /** Keeps the per-file timings of a finished job's JUnit reports, beside the job. */
  #keepTimings(build: BuildRecord, jobId: string): void {
    const reports = this.#options.reports;
    if (!reports) return;
    const work = reports(jobId).then(async (texts) => {
      const timings = Object.assign({}, ...texts.map(junitTimings));
      if (Object.keys(timings).length) {
        await this.store.recordTimings(build.repo, timings, this.#now());
      }
    }).catch((error) => {
      this.#options.log?.(`job ${jobId}: timings not kept: ${(error as Error).message}`);
    });
    this.#writes = this.#writes.then(() => work);
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }
}
