/**
 * A job's trigger as the CLI prints it: one short column for `strider jobs`, and a header of
 * who, what, from where and a link for `strider logs` and `submit --follow`.
 */
import type { Trigger } from "../protocol/mod.ts";

/** `text` on one line, cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? line.slice(0, Math.max(0, max - 1)) + "…" : line;
}

/** The author's best short name: name, else username, else email. */
export function authorName(trigger: Trigger): string | undefined {
  const a = trigger.author;
  return a?.name || a?.username || a?.email || undefined;
}

/** Where the trigger came from: `github webhook`, `API (strider-cli)`, `dashboard`. */
export function sourceText(trigger: Trigger): string {
  const source = trigger.source;
  switch (source.type) {
    case "plugin":
      return ["github", "gitlab", "gitea"].includes(source.plugin)
        ? `${source.plugin} webhook`
        : `plugin ${source.plugin}`;
    case "API":
      return `API (${source.app})`;
    case "UI":
      return source.page === "dashboard" ? "dashboard" : `UI (${source.page})`;
  }
}

/**
 * The trigger in a column of `strider jobs`: type, author and the message's first line.
 *
 * @example
 * triggerColumn(trigger, 40) // "commit by Jane Doe: Fix the flaky test"
 */
export function triggerColumn(trigger: Trigger, max = 60): string {
  const who = authorName(trigger);
  const head = who ? `${trigger.type} by ${oneLine(who, 24)}` : trigger.type;
  const message = trigger.message ? oneLine(trigger.message.split("\n")[0], max) : "";
  return oneLine(message ? `${head}: ${message}` : head, max);
}

/** The lines printed once when following a job: who, what, from where, and the link. */
export function triggerHeader(id: string, trigger: Trigger): string {
  const a = trigger.author;
  const who = authorName(trigger);
  const handle = a?.username && a.username !== who ? ` (${a.username})` : "";
  const email = a?.email && a.email !== who ? ` <${a.email}>` : "";
  const lines = [
    `job ${id}: ${trigger.type}${who ? ` by ${who}${handle}${email}` : ""}, ` +
    `from ${sourceText(trigger)} at ${trigger.timestamp}`,
  ];
  if (trigger.message) lines.push(`  ${oneLine(trigger.message.split("\n")[0], 100)}`);
  if (trigger.url) lines.push(`  ${trigger.url}`);
  return lines.join("\n") + "\n";
}
