import { z } from "zod";
import { LIMITS } from "./limits.ts";

const text = (max: number = LIMITS.text) => z.string().max(max);

/**
 * Whether `url` is an absolute `http:` or `https:` URL: the only links strider renders (a
 * `javascript:` or `data:` link in a trigger would run in the dashboard's origin when clicked).
 */
export function isHttpUrl(url: string): boolean {
  if (!/^https?:\/\//i.test(url)) return false;
  try {
    return ["http:", "https:"].includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

const httpUrl = text(LIMITS.url).refine(
  isHttpUrl,
  "must be an http:// or https:// URL (other schemes are never rendered as links)",
);

/** Who caused a job to run (the seed's trigger spec, `author`). */
export const TriggerAuthorSchema = z.strictObject({
  id: text(LIMITS.url).optional().describe("the strider user id"),
  url: text(LIMITS.url).optional().describe("e.g. github.com/username"),
  name: text(LIMITS.url).optional(),
  email: text(LIMITS.url).optional(),
  gravatar: text(LIMITS.url).optional(),
  username: text(LIMITS.url).optional().describe("only applicable for github, etc."),
});

/** Where a trigger came from: the dashboard, an API client, or a plugin such as a webhook. */
export const TriggerSourceSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("UI"), page: text(LIMITS.name) }),
  z.strictObject({ type: z.literal("API"), app: text(LIMITS.name) }),
  z.strictObject({ type: z.literal("plugin"), plugin: text(LIMITS.name) }),
]);

/** Latest epoch-milliseconds value a JavaScript Date can hold. */
const MAX_EPOCH_MS = 8.64e15;

/**
 * When a trigger happened: ISO 8601, or milliseconds since the Unix epoch (what Strider's own
 * JavaScript wrote, `Date.now()`), stored as ISO 8601 either way.
 */
export const TimestampSchema = z.union([
  z.iso.datetime({ offset: true }),
  z.int().min(0).max(MAX_EPOCH_MS),
]).transform((value) => typeof value === "number" ? new Date(value).toISOString() : value)
  .describe("when the trigger happened: ISO 8601, or milliseconds since the Unix epoch");

/** The seed's trigger spec: why a job ran, shown in the UI. */
export const TriggerSchema = z.strictObject({
  type: z.string().min(1).max(LIMITS.name).describe(
    "manual, commit, pull-request, dependency, ...",
  ),
  author: TriggerAuthorSchema.optional(),
  message: text().optional().describe("displayed in the UI"),
  timestamp: TimestampSchema,
  url: httpUrl.optional().describe("the message links here (http or https only)"),
  source: TriggerSourceSchema,
});

export type TriggerAuthor = z.infer<typeof TriggerAuthorSchema>;
export type TriggerSource = z.infer<typeof TriggerSourceSchema>;
export type Trigger = z.infer<typeof TriggerSchema>;
