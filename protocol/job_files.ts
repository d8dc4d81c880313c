/**
 * What a job keeps beyond its workspace: caches (restored before `prepare`, saved after a passing
 * `test`, on the worker) and artifacts (files sent to the queen after the phases). Paths are
 * relative to the checkout, or to the job's `HOME` with `~/`; nothing may point outside them.
 */
import { z } from "zod";
import { LIMITS } from "./limits.ts";

/** Caches and artifact patterns a job may name. */
export const MAX_CACHES = 16;
export const MAX_CACHE_PATHS = 64;
export const MAX_ARTIFACT_PATTERNS = 64;

/** Why `path` is not a workspace-relative path, or `undefined` when it is one. */
export function workspacePathProblem(path: string): string | undefined {
  if (path.length === 0) return "must not be empty";
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f\\]/.test(path)) return "must not contain control characters or '\\'";
  const rest = path.startsWith("~/") ? path.slice(2) : path;
  if (rest.startsWith("/")) return "must be relative to the checkout, or start with ~/ for HOME";
  if (rest.split("/").some((part) => part === "..")) return "must not contain '..'";
  return undefined;
}

const workspacePath = z.string().max(LIMITS.ref).superRefine((value, ctx) => {
  const message = workspacePathProblem(value);
  if (message) ctx.addIssue({ code: "custom", message });
});

/** One cache: a key (with `{{ checksum "FILE" }}`, `{{ os }}`, `{{ arch }}`) and its paths. */
export const CacheSpecSchema = z.strictObject({
  key: z.string().min(1).max(LIMITS.ref).describe(
    'e.g. npm-{{ checksum "package-lock.json" }}; a cache is kept per repository and key',
  ),
  paths: z.array(workspacePath).min(1).max(MAX_CACHE_PATHS).describe(
    "folders or files, relative to the checkout or ~/ for the job's HOME",
  ),
});
export type CacheSpec = z.infer<typeof CacheSpecSchema>;

export const CacheListSchema = z.array(CacheSpecSchema).max(MAX_CACHES);

/** Artifact patterns: `dist/**`, `coverage/` (a folder and all below it), `*.log`. */
export const ArtifactPatternsSchema = z.array(workspacePath.refine(
  (value) => !value.startsWith("~/"),
  "artifacts come from the checkout: no ~/",
)).max(MAX_ARTIFACT_PATTERNS);
