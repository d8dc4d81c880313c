/**
 * What a forge's webhook means to the queen, whichever forge sent it: a job to run (with its ref
 * and trigger) or an event that runs nothing. The parsers are pure: headers and payload in,
 * this out.
 */
import type { z } from "zod";
import type { Ref, Trigger, TriggerAuthor } from "../../protocol/mod.ts";
import { describeIssues, issuesOf, LIMITS } from "../../protocol/mod.ts";
import { InvalidInputError } from "../errors.ts";
import type { Issue } from "../errors.ts";
import type { Verdict } from "./verify.ts";

/** A forge whose webhooks the queen takes: how to check them and what they mean. */
export interface Forge {
  /** The route (`/hooks/<name>`) and the trigger's `source.plugin`. */
  name: "github" | "gitlab" | "gitea";
  /** Shown in messages. */
  title: string;
  /** The header that authenticates a delivery. */
  authHeader: string;
  verify(headers: Headers, body: Uint8Array, secret: string): Verdict;
  /** The repository's names in a payload not checked yet, to find its project (and secret). */
  repoNames(payload: unknown): string[];
  /** Throws `WebhookPayloadError` when the payload lacks what its event needs. */
  parse(headers: Headers, payload: unknown, receivedAt?: string): ParsedWebhook;
}

/** A webhook event that runs a job. */
export interface WebhookJob {
  /** `push` to a branch, `tag` push, or a `pull-request` opened or updated. */
  kind: "push" | "tag" | "pull-request";
  /** The forge's id of this delivery; a repeated delivery carries the same one. */
  deliveryId?: string;
  /** The repository's full name and addresses, to find its project by. */
  repoNames: string[];
  ref: Ref;
  /** The branch whose settings apply: the pushed branch or the pull request's target. */
  branch?: string;
  /** A pull request from another repository (a fork): its jobs get no secrets. */
  fromFork?: boolean;
  /** The commit the forge shows the job's status on: the pushed one, or the pull request's head. */
  commit?: string;
  trigger: Trigger;
}

/** A webhook event that runs nothing (a ping, a deleted branch, a closed pull request). */
export interface WebhookIgnored {
  kind: "ignored";
  deliveryId?: string;
  repoNames: string[];
  /** Said to the forge, which shows it in the delivery's log. */
  reason: string;
  /** The forge's test delivery, answered 200. */
  ping?: boolean;
}

export type ParsedWebhook = WebhookJob | WebhookIgnored;

/** A payload lacks a field the event needs, or has one of the wrong type. */
export class WebhookPayloadError extends InvalidInputError {
  constructor(message: string, issues: readonly Issue[] = []) {
    super(message, issues);
    this.name = "WebhookPayloadError";
  }
}

/** The fields of `payload` that `schema` describes; a `WebhookPayloadError` naming each problem. */
export function readPayload<T>(schema: z.ZodType<T>, payload: unknown, what: string): T {
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issues = issuesOf(result.error);
  throw new WebhookPayloadError(`not a ${what} payload: ${describeIssues(issues)}`, issues);
}

/** The all-zero commit id forges send as `after` when a branch or tag was deleted. */
export function isZeroCommit(id: string | null | undefined): boolean {
  return !id || /^0+$/.test(id);
}

/** `text` cut to `max` characters. */
export function clip(text: string, max: number = LIMITS.text): string {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/**
 * A forge's time as ISO 8601, or `fallback` when there is none or it cannot be read. GitLab
 * writes some times as `2013-12-03 17:23:34 UTC`.
 */
export function isoTime(text: string | null | undefined, fallback: string): string {
  if (!text) return fallback;
  const normal = text
    .replace(/^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) UTC$/, "$1T$2Z")
    .replace(/^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) ?([+-]\d\d):?(\d\d)$/, "$1T$2$3:$4");
  const ms = Date.parse(normal);
  return Number.isNaN(ms) ? fallback : new Date(ms).toISOString();
}

/** An author with empty and oversized fields dropped. */
export function author(fields: Record<string, string | null | undefined>): TriggerAuthor {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value && value !== "[REDACTED]") out[key] = clip(value, LIMITS.url);
  }
  return out as TriggerAuthor;
}

/** The scheme and host of a web address (`https://github.com`), for user profile links. */
export function originOf(url: string | null | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** The distinct non-empty strings among `values`. */
export function names(...values: unknown[]): string[] {
  return [...new Set(values.filter((v): v is string => typeof v === "string" && v !== ""))];
}

/** `value[key]` when `value` is an object, for reading payloads not validated yet. */
export function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

/** A commit id as a ref's `id`, when it is one. */
export function commitId(id: string | null | undefined): string | undefined {
  return id && /^[0-9a-fA-F]{4,64}$/.test(id) && !isZeroCommit(id) ? id : undefined;
}
