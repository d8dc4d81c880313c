/**
 * Artifacts: files a job keeps, sent by the worker to the queen after the job's phases
 * (`PUT /worker/artifacts/:id/:attempt?path=P` with the worker token and an
 * `x-strider-sha256` header) and served by any queen from the store
 * (`GET /api/jobs/:id/artifacts[/path]`).
 */
import { z } from "zod";

/** Longest artifact path, in characters. */
export const MAX_ARTIFACT_PATH = 1024;

/**
 * Why `path` is not a clean artifact path, or `undefined`: relative, `/`-separated, no empty,
 * `.` or `..` segments, no control characters or backslashes. This is what keeps an upload or a
 * download (`strider artifacts --out DIR`) inside its folder.
 */
export function artifactPathProblem(path: string): string | undefined {
  if (path.length === 0) return "must not be empty";
  if (path.length > MAX_ARTIFACT_PATH) return `must be at most ${MAX_ARTIFACT_PATH} characters`;
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f\\]/.test(path)) return "must not contain control characters or '\\'";
  if (path.startsWith("/")) return "must be relative (no leading '/')";
  if (path.split("/").some((part) => part === "" || part === "." || part === "..")) {
    return "must not contain empty, '.' or '..' segments";
  }
  return undefined;
}

export const ArtifactPathSchema = z.string().superRefine((value, ctx) => {
  const message = artifactPathProblem(value);
  if (message) ctx.addIssue({ code: "custom", message });
});

/** One stored artifact. */
export const ArtifactSchema = z.object({
  path: ArtifactPathSchema.describe("relative to the job's checkout"),
  size: z.int().nonnegative().describe("bytes"),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  attempt: z.int().min(1),
});
export type Artifact = z.infer<typeof ArtifactSchema>;

/** `GET /api/jobs/:id/artifacts`. */
export const ArtifactListSchema = z.object({ artifacts: z.array(ArtifactSchema) });
export type ArtifactList = z.infer<typeof ArtifactListSchema>;
