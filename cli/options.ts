/**
 * Command-line flags with their environment variables: each flag `--foo-bar` also reads
 * `STRIDER_FOO_BAR` (or the variable it names), the flag winning. Bad input is a `UsageError`,
 * which `main.ts` prints with the usage and exit code 2.
 */
import { parseArgs } from "node:util";

/** Wrong flags or values: the message says what to fix. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One flag of a command. */
export interface Flag {
  type: "string" | "boolean";
  /** Short help text. */
  help: string;
  /** The environment variable; defaults to `STRIDER_<NAME>`. `false` for none. */
  env?: string | false;
  default?: string;
  /** May be given several times (strings only). */
  multiple?: boolean;
  /** Shown in the usage, e.g. `N` or `URL`. */
  value?: string;
}

export type Flags = Record<string, Flag>;

/** Parsed values: strings (or lists of them) and booleans, by flag name. */
export type Values = Record<string, string | string[] | boolean | undefined>;

/** The environment variable a flag reads. */
export function envName(name: string, flag: Flag): string | undefined {
  if (flag.env === false) return undefined;
  return flag.env ?? `STRIDER_${name.toUpperCase().replaceAll("-", "_")}`;
}

/** Parses `args` against `flags`; positionals up to `maxPositionals`. */
export function parseFlags(
  args: string[],
  flags: Flags,
  options: { maxPositionals?: number; env?: (name: string) => string | undefined } = {},
): { values: Values; positionals: string[] } {
  const readEnv = options.env ?? ((name: string) => Deno.env.get(name));
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(
          Object.entries(flags).map(([name, flag]) => [name, {
            type: flag.type,
            multiple: flag.multiple ?? false,
          }]),
        ),
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const max = options.maxPositionals ?? 0;
  if (parsed.positionals.length > max) {
    throw new UsageError(`unexpected argument '${parsed.positionals[max]}'`);
  }
  const values: Values = { help: parsed.values.help as boolean | undefined };
  for (const [name, flag] of Object.entries(flags)) {
    let value = (parsed.values as Record<string, unknown>)[name] as Values[string];
    const variable = envName(name, flag);
    if (value === undefined && variable) {
      const fromEnv = readEnv(variable);
      if (fromEnv !== undefined && fromEnv !== "") {
        if (flag.type === "boolean") {
          if (!["1", "true", "0", "false"].includes(fromEnv)) {
            throw new UsageError(`${variable} must be true or false, not '${fromEnv}'`);
          }
          value = fromEnv === "1" || fromEnv === "true";
        } else value = flag.multiple ? fromEnv.split(",") : fromEnv;
      }
    }
    if (value === undefined && flag.default !== undefined) value = flag.default;
    values[name] = value;
  }
  return { values, positionals: parsed.positionals };
}

/** A string flag's value, or undefined when it was not given (see `required`). */
export function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/** A string flag's value, or a `UsageError` when it is missing or empty. */
export function required(values: Values, name: string): string {
  const value = str(values, name);
  if (value === undefined || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

/** An integer flag within bounds. */
export function int(values: Values, name: string, min: number, max: number): number | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not '${text}'`);
  }
  return n;
}

/** A positive number flag. */
export function positive(values: Values, name: string): number | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(`--${name} must be a positive number, not '${text}'`);
  }
  return n;
}

/** A list flag: repeated and/or comma-separated values, empty entries dropped. */
export function list(values: Values, name: string): string[] {
  const value = values[name];
  const items = Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
  return items.flatMap((item) => item.split(",")).map((s) => s.trim()).filter(Boolean);
}

/** `NAME=value` pairs from a repeated flag. */
export function pairs(values: Values, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  const value = values[name];
  for (const item of Array.isArray(value) ? value : typeof value === "string" ? [value] : []) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${name} takes NAME=value, not '${item}'`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** A usage text listing `flags`. */
export function usage(synopsis: string, flags: Flags): string {
  const lines = [`usage: ${synopsis}`, "", "flags:"];
  for (const [name, flag] of Object.entries(flags)) {
    const left = `  --${name}${flag.type === "string" ? ` ${flag.value ?? "VALUE"}` : ""}`;
    const env = envName(name, flag);
    const extra = [
      flag.default !== undefined ? `default ${flag.default}` : "",
      env ? `env ${env}` : "",
    ].filter(Boolean).join("; ");
    lines.push(`${left.padEnd(28)} ${flag.help}${extra ? ` (${extra})` : ""}`);
  }
  lines.push(`  ${"--help".padEnd(26)} show this help`);
  return lines.join("\n");
}
