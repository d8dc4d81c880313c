/**
 * Plugins declared in JSON files (`--plugins-dir`): a name, environment variables, PATH entries
 * and commands per phase, with `{{config.x}}` replaced from the job's config for that plugin.
 *
 * ```json
 * { "name": "make", "env": { "MAKEFLAGS": "-j2" },
 *   "phases": { "test": ["make {{config.target}}"], "cleanup": [{ "command": "make", "args": ["clean"] }] } }
 * ```
 */
import { join } from "node:path";
import { z } from "zod";
import { EnvNameSchema, NameSchema, PHASES, validate } from "../protocol/mod.ts";
import type { Phase, PluginConfig } from "../protocol/mod.ts";
import type { Plugin, PluginCommand, PluginContext, PluginContribution } from "./plugins.ts";

const CommandSchema = z.union([
  z.string().min(1).max(65536),
  z.strictObject({
    command: z.string().min(1).max(4096),
    args: z.array(z.string().max(65536)).max(256).optional(),
    screen: z.string().max(4096).optional(),
    silent: z.boolean().optional(),
    env: z.record(EnvNameSchema, z.string().max(65536)).optional(),
    cwd: z.string().max(4096).optional(),
    timeout: z.int().min(1).max(7 * 24 * 3600).optional(),
  }),
]);

/** The JSON a plugin file holds. */
export const PluginFileSchema = z.strictObject({
  name: NameSchema,
  env: z.record(EnvNameSchema, z.string().max(65536)).optional(),
  path: z.array(z.string().max(4096)).max(64).optional(),
  phases: z.partialRecord(z.enum(PHASES), z.union([CommandSchema, z.array(CommandSchema)]))
    .optional(),
});
export type PluginFile = z.infer<typeof PluginFileSchema>;

/** Replaces `{{config.key}}` with the plugin's config value (empty when unset). */
export function substitute(text: string, config: Record<string, unknown>): string {
  return text.replace(/\{\{\s*config\.([A-Za-z0-9_.-]+)\s*\}\}/g, (_, key: string) => {
    const value = key.split(".").reduce<unknown>(
      (
        at,
        part,
      ) => (at && typeof at === "object" ? (at as Record<string, unknown>)[part] : undefined),
      config,
    );
    return value === undefined || value === null ? "" : String(value);
  });
}

/** Turns a validated plugin file into a plugin. */
export function pluginFromFile(file: PluginFile): Plugin {
  return {
    name: file.name,
    contribute(config: PluginConfig, _context: PluginContext): PluginContribution {
      const own = config[file.name];
      const values = own && typeof own === "object" ? own as Record<string, unknown> : {};
      const sub = (text: string) => substitute(text, values);
      const phases: PluginContribution["phases"] = {};
      for (const phase of PHASES) {
        const declared = file.phases?.[phase];
        if (!declared) continue;
        const list = Array.isArray(declared) ? declared : [declared];
        phases[phase as Phase] = list.map((command): PluginCommand => {
          if (typeof command === "string") {
            const script = sub(command);
            return { command: "sh", args: ["-ec", script], screen: script };
          }
          const args = (command.args ?? []).map(sub);
          return {
            command: sub(command.command),
            args,
            screen: command.screen ?? [sub(command.command), ...args].join(" "),
            silent: command.silent,
            env: command.env && Object.fromEntries(
              Object.entries(command.env).map(([k, v]) => [k, sub(v)]),
            ),
            cwd: command.cwd,
            timeout: command.timeout,
          };
        });
      }
      const env = Object.fromEntries(Object.entries(file.env ?? {}).map(([k, v]) => [k, sub(v)]));
      return { env, path: file.path ?? [], phases };
    },
  };
}

/**
 * Loads every `*.json` file in `dir` as a plugin. A file that is not valid JSON or not a valid
 * plugin throws a `TypeError` naming the file and the problem, so the worker refuses to start
 * rather than run jobs without a plugin its operator meant it to have.
 */
export async function loadPluginFiles(dir: string): Promise<Plugin[]> {
  const plugins: Plugin[] = [];
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".json")) names.push(entry.name);
  }
  for (const name of names.sort()) {
    const path = join(dir, name);
    let raw: unknown;
    try {
      raw = JSON.parse(await Deno.readTextFile(path));
    } catch (error) {
      throw new TypeError(`plugin file ${path} is not JSON: ${(error as Error).message}`);
    }
    const file = validate(PluginFileSchema, raw);
    if (!file.ok) throw new TypeError(`plugin file ${path} is invalid:\n${file.error}`);
    plugins.push(pluginFromFile(file.value));
  }
  return plugins;
}
