/**
 * A submitted spec as the jobs of its build: one per matrix combination (less `exclude`, plus
 * `include`), times `parallelism` shards, each with its matrix values, its shard and its labels'
 * `${axis}` filled in. Pure; problems are `InvalidInputError`s naming the field to fix.
 * @module
 */
import {
  type BuildInfo,
  type Combination,
  type JobSpec,
  matrixAxes,
  MAX_BUILD_JOBS,
  MAX_MATRIX_COMBINATIONS,
  MAX_TIMINGS_BYTES,
  NameSchema,
  type ShardTimings,
} from "../../protocol/mod.ts";
import { InvalidInputError } from "../errors.ts";

/** One job of a build to be. */
export interface PlannedJob {
  id: string;
  spec: JobSpec;
  build: BuildInfo;
}

/** A build to be: its axes (for grids) and its jobs. */
export interface BuildPlan {
  axes: { name: string; values: string[] }[];
  jobs: PlannedJob[];
}

/** Whether every axis `pattern` names has the same value in `combination`. */
function matches(combination: Combination, pattern: Combination): boolean {
  return Object.entries(pattern).every(([axis, value]) => combination[axis] === value);
}

/** The matrix's combinations in order, or a 400 past `MAX_MATRIX_COMBINATIONS`. */
export function combinationsOf(spec: JobSpec): Combination[] {
  const matrix = spec.matrix;
  if (!matrix) return [{}];
  const axes = matrixAxes(matrix);
  const product = axes.reduce((n, [, values]) => n * new Set(values).size, 1);
  const limit = MAX_MATRIX_COMBINATIONS;
  // Counted before making them: a matrix of 16 axes × 64 values must not be built to be refused.
  if (product > limit * 16) tooMany(product);
  let out: Combination[] = [{}];
  for (const [axis, values] of axes) {
    out = out.flatMap((c) => [...new Set(values)].map((v) => ({ ...c, [axis]: v })));
  }
  if (!axes.length) out = [];
  out = out.filter((c) => !(matrix.exclude ?? []).some((pattern) => matches(c, pattern)));
  for (const extra of matrix.include ?? []) {
    if (!out.some((c) => JSON.stringify(c) === JSON.stringify(extra))) out.push(extra);
  }
  if (out.length > limit) tooMany(out.length);
  if (!out.length) {
    throw new InvalidInputError("matrix: every combination is excluded: nothing would run");
  }
  return out;
}

function tooMany(count: number): never {
  throw new InvalidInputError(
    `matrix: ${count} combinations, over the limit of ${MAX_MATRIX_COMBINATIONS}: ` +
      "use fewer values or 'exclude' some",
  );
}

/** The labels of one combination, each `${axis}` replaced by its value. */
function labelsOf(labels: readonly string[], combination: Combination): string[] {
  return labels.map((label, i) => {
    const filled = label.replace(/\$\{([^}]*)\}/g, (_, axis: string) => {
      if (!Object.hasOwn(combination, axis)) {
        throw new InvalidInputError(
          `labels[${i}]: '${label}' names \${${axis}}, which is not an axis of this job's matrix`,
        );
      }
      return combination[axis];
    });
    if (!NameSchema.safeParse(filled).success) {
      throw new InvalidInputError(
        `labels[${i}]: '${label}' becomes '${filled}', which is not a label ` +
          "(1-64 letters, digits, '.', '_' or '-')",
      );
    }
    return filled;
  });
}

/** A job's name in its build: `node-20-os-linux`, `shard-2`, or both joined by `-`. */
function nameOf(combination: Combination, shard: number | undefined): string {
  const parts = Object.entries(combination).map(([axis, value]) => `${axis}-${value}`);
  if (shard !== undefined) parts.push(`shard-${shard}`);
  return parts.join("-") || "job";
}

/** The newest timings that fit in `MAX_TIMINGS_BYTES` of JSON. */
function capped(timings: ShardTimings): ShardTimings {
  const out: ShardTimings = {};
  let bytes = 2;
  for (const [file, seconds] of Object.entries(timings)) {
    const entry = JSON.stringify(file).length + String(seconds).length + 2;
    if (bytes + entry > MAX_TIMINGS_BYTES) break;
    out[file] = seconds;
    bytes += entry;
  }
  return out;
}

/**
 * The jobs `spec` makes as build `buildId`. A spec with neither `matrix` nor `parallelism` is a
 * build of one: its job keeps the build's id and carries no `build` field, exactly as before.
 */
export function planBuild(spec: JobSpec, buildId: string, timings: ShardTimings = {}): BuildPlan {
  const { matrix, parallelism, fail_fast: _failFast, build: _build, ...base } = spec;
  const combinations = combinationsOf(spec);
  const shards = parallelism ?? 1;
  if (combinations.length * shards > MAX_BUILD_JOBS) {
    throw new InvalidInputError(
      `matrix × parallelism: ${combinations.length} × ${shards} jobs, over the limit of ` +
        `${MAX_BUILD_JOBS} per build`,
    );
  }
  const axes = matrix
    ? matrixAxes(matrix).map(([name, values]) => ({ name, values: [...new Set(values)] }))
    : [];
  // Axes that only `include` adds still need a row or column.
  for (const combination of combinations) {
    for (const [name, value] of Object.entries(combination)) {
      let axis = axes.find((a) => a.name === name);
      if (!axis) axes.push(axis = { name, values: [] });
      if (!axis.values.includes(value)) axis.values.push(value);
    }
  }
  if (!matrix && !parallelism) {
    return {
      axes,
      jobs: [{
        id: buildId,
        spec: base.labels ? { ...base, labels: labelsOf(base.labels, {}) } : base,
        build: { id: buildId, name: "job" },
      }],
    };
  }
  const shardTimings = shards > 1 ? capped(timings) : {};
  const jobs: PlannedJob[] = [];
  for (const combination of combinations) {
    const allowFailure = (matrix?.allow_failure ?? []).some((p) => matches(combination, p));
    for (let index = 0; index < shards; index++) {
      const shard = shards > 1 ? index : undefined;
      const name = nameOf(combination, shard);
      const long = `${buildId}.${name}`;
      const id = long.length <= 64 ? long : `${buildId}.${jobs.length + 1}`;
      const build: BuildInfo = {
        id: buildId,
        name,
        ...(Object.keys(combination).length ? { matrix: combination } : {}),
        ...(shard !== undefined ? { shard: { index, total: shards } } : {}),
        ...(allowFailure ? { allow_failure: true } : {}),
        ...(Object.keys(shardTimings).length ? { timings: shardTimings } : {}),
      };
      const labels = base.labels && labelsOf(base.labels, combination);
      jobs.push({ id, build, spec: { ...base, job_id: id, ...(labels ? { labels } : {}), build } });
    }
  }
  return { axes, jobs };
}
