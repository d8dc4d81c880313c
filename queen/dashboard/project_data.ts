/**
 * What the projects pages show, read through the store's `listJobs`: the projects (registered
 * with `POST /api/projects`, and repositories seen in recent jobs), their branches with the latest
 * result and history, and a project's jobs filtered the way the page's URL says.
 */
import type { JobSummary, Project } from "../../protocol/mod.ts";
import { JobResultSchema } from "../../protocol/mod.ts";
import { jobSummary } from "../job_summary.ts";
import { repoKey } from "../projects/repo_key.ts";
import type { ProjectStore } from "../projects/store.ts";
import type { JobFilter, JobPage, JobRecord } from "../store.ts";

/** The part of the store these pages read (awaited, so an async store fits too). */
export interface JobLister {
  listJobs(filter: JobFilter): JobPage | Promise<JobPage>;
}

/** Recent jobs scanned for repositories and branches not registered as projects. */
export const SCAN_JOBS = 2000;
/** Jobs a filter that the store cannot apply (trigger, author, drone, until) looks through. */
export const FILTER_SCAN = 5000;
/** A project's recent jobs its branches are found in (one page of the store). */
export const BRANCH_SCAN = 500;
/** Runs of a branch shown as its history, and in a project's trend. */
export const HISTORY_RUNS = 30;

/** A project as the pages list it: registered, or only seen in jobs. */
export interface ProjectEntry {
  /** The name in URLs: the registered name, or the repository's key (see `repoKey`). */
  name: string;
  repo: string;
  registered: boolean;
  project?: Project;
}

/** A branch of a project: its latest job and its recent ones, newest first. */
export interface BranchEntry {
  branch: string;
  latest: JobSummary;
  history: JobSummary[];
}

/** Every page of `filter` until `max` records were read. */
async function scan(
  store: JobLister,
  filter: Omit<JobFilter, "limit" | "cursor">,
  max: number,
  keep: (record: JobRecord) => boolean = () => true,
  want = max,
): Promise<{ records: JobRecord[]; next: string | null }> {
  const records: JobRecord[] = [];
  let cursor: string | undefined;
  let read = 0;
  let next: string | null = null;
  do {
    const page = await store.listJobs({ ...filter, limit: 500, cursor });
    for (const record of page.records) {
      read++;
      if (keep(record)) records.push(record);
      if (records.length >= want) {
        next = record.id;
        break;
      }
    }
    if (records.length >= want) break;
    cursor = page.next ?? undefined;
  } while (cursor && read < max);
  return { records, next };
}

/** The branch a job ran, or null for a fetched refspec. */
export function branchOf(record: JobRecord): string | null {
  return "branch" in record.spec.ref ? record.spec.ref.branch : null;
}

/** Registered projects, then repositories seen in the last `SCAN_JOBS` jobs, by name. */
export async function listProjects(
  store: JobLister,
  projects: ProjectStore,
): Promise<ProjectEntry[]> {
  const entries: ProjectEntry[] = (await projects.list()).map(({ project }) => ({
    name: project.name,
    repo: project.repo.url,
    registered: true,
    project,
  }));
  const known = new Set(entries.map((e) => repoKey(e.repo)));
  const { records } = await scan(store, {}, SCAN_JOBS);
  for (const record of records) {
    const key = repoKey(record.spec.repo.url);
    if (known.has(key)) continue;
    known.add(key);
    entries.push({ name: key, repo: record.spec.repo.url, registered: false });
  }
  return entries.sort((a, b) => a.name.localeCompare(b.name));
}

/** The project called `name` (registered name or repository key), if any. */
export async function findProject(
  store: JobLister,
  projects: ProjectStore,
  name: string,
): Promise<ProjectEntry | undefined> {
  const found = await projects.get(name);
  if (found) {
    return { name: found.project.name, repo: found.project.repo.url, registered: true };
  }
  // Not registered: the first recent job of a repository with that key (no full listing).
  const registered = new Set((await projects.list()).map((p) => repoKey(p.project.repo.url)));
  if (registered.has(name)) return undefined;
  const { records } = await scan(
    store,
    {},
    SCAN_JOBS,
    (record) => repoKey(record.spec.repo.url) === name,
    1,
  );
  const repo = records[0]?.spec.repo.url;
  return repo ? { name, repo, registered: false } : undefined;
}

/**
 * The project's branches in its last `BRANCH_SCAN` jobs, most recently run first, each with its
 * last `HISTORY_RUNS` jobs of those.
 */
export async function branchesOf(store: JobLister, repo: string): Promise<BranchEntry[]> {
  const { records } = await scan(store, { repo }, BRANCH_SCAN);
  const byBranch = new Map<string, JobSummary[]>();
  for (const record of records) {
    const branch = branchOf(record);
    if (branch === null) continue;
    const list = byBranch.get(branch) ?? [];
    if (list.length < HISTORY_RUNS) list.push(jobSummary(record));
    byBranch.set(branch, list);
  }
  return [...byBranch].map(([branch, history]) => ({ branch, latest: history[0], history }));
}

/** The latest finished job of a project's branch (for its badge). */
export async function latestFinished(
  store: JobLister,
  repo: string,
  branch: string,
): Promise<JobSummary | undefined> {
  const { records } = await scan(
    store,
    { repo, branch, status: "done" },
    FILTER_SCAN,
    () => true,
    1,
  );
  return records[0] ? jobSummary(records[0]) : undefined;
}

/** The finished runs of a project, newest first, for its trend. */
export async function recentRuns(store: JobLister, repo: string, n = HISTORY_RUNS) {
  const { records } = await scan(store, { repo, status: "done" }, FILTER_SCAN, () => true, n);
  return records.map(jobSummary);
}

/** A jobs list's filters as the page's URL carries them (every one optional). */
export interface JobQuery {
  result?: string;
  branch?: string;
  trigger?: string;
  author?: string;
  drone?: string;
  /** Dates, `YYYY-MM-DD`: jobs created on or after `since`, on or before `until`. */
  since?: string;
  until?: string;
  /** Where the page starts: the id of the first job of it (from the previous page's link). */
  after?: string;
}

/** The names of the query's fields, in the order the form shows them. */
export const QUERY_FIELDS = [
  "result",
  "branch",
  "trigger",
  "author",
  "drone",
  "since",
  "until",
] as const;

/** Reads the filters from a URL's parameters; unknown values are dropped, with a problem. */
export function readJobQuery(
  get: (name: string) => string | undefined,
): { query: JobQuery; problems: string[] } {
  const query: JobQuery = {};
  const problems: string[] = [];
  for (const field of [...QUERY_FIELDS, "after"] as const) {
    const value = get(field)?.trim().slice(0, 200);
    if (value) query[field] = value;
  }
  if (query.result && !JobResultSchema.safeParse(query.result).success) {
    problems.push(`result must be one of ${JobResultSchema.options.join(", ")}`);
    delete query.result;
  }
  for (const field of ["since", "until"] as const) {
    const value = query[field];
    if (value && !(/^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(value)))) {
      problems.push(`${field} must be a date like 2026-11-30`);
      delete query[field];
    }
  }
  return { query, problems };
}

/** Whether a job matches the filters the store does not apply itself. */
function matches(record: JobRecord, query: JobQuery): boolean {
  const trigger = record.spec.trigger;
  if (query.trigger && trigger?.type !== query.trigger) return false;
  if (query.author) {
    const a = trigger?.author;
    const needle = query.author.toLowerCase();
    const names = [a?.name, a?.username, a?.email].filter(Boolean).map((s) => s!.toLowerCase());
    if (!names.some((n) => n.includes(needle))) return false;
  }
  if (query.drone && !record.view.attempts.some((a) => a.drone === query.drone)) return false;
  if (query.until && Date.parse(record.view.createdAt) >= Date.parse(query.until) + 86_400_000) {
    return false;
  }
  return true;
}

/** One page of a project's jobs, and the id the next page starts after (null on the last). */
export async function filteredJobs(
  store: JobLister,
  repo: string | undefined,
  query: JobQuery,
  pageSize = 25,
): Promise<{ jobs: JobSummary[]; next: string | null }> {
  let started = !query.after;
  const { records, next } = await scan(
    store,
    {
      repo,
      branch: query.branch,
      result: query.result,
      since: query.since ? Date.parse(query.since) : undefined,
    },
    FILTER_SCAN,
    (record) => {
      if (!started) {
        started = record.id === query.after;
        return false;
      }
      return matches(record, query);
    },
    pageSize + 1,
  );
  const jobs = records.slice(0, pageSize).map(jobSummary);
  return { jobs, next: records.length > pageSize && next ? jobs[jobs.length - 1].id : null };
}
