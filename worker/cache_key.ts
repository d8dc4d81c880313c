/**
 * Cache keys with file digests: `npm-{{ checksum "package-lock.json" }}` becomes `npm-` and the
 * file's SHA-256, so a changed lockfile makes a new key (and a fresh cache). Also `{{ os }}` and
 * `{{ arch }}`, for caches holding compiled code.
 */
import { join } from "node:path";
import { workspacePathProblem } from "../protocol/mod.ts";
import { hex } from "../protocol/hex.ts";

const TEMPLATE = /\{\{\s*([^}]*?)\s*\}\}/g;
const CHECKSUM = /^checksum\s+"([^"]+)"$/;

/** A rendered key, or why the template cannot be rendered. */
export type RenderedKey = { ok: true; key: string } | { ok: false; error: string };

/** Renders `template` against the checkout `src`; a missing file's checksum is `missing`. */
export async function renderCacheKey(template: string, src: string): Promise<RenderedKey> {
  const parts: (string | Promise<string>)[] = [];
  let last = 0;
  for (const match of template.matchAll(TEMPLATE)) {
    parts.push(template.slice(last, match.index));
    last = match.index + match[0].length;
    const expression = match[1];
    if (expression === "os") parts.push(Deno.build.os);
    else if (expression === "arch") parts.push(Deno.build.arch);
    else {
      const file = expression.match(CHECKSUM)?.[1];
      if (!file) {
        return {
          ok: false,
          error: `cache key '${template}': unknown {{ ${expression} }}; ` +
            'use {{ checksum "FILE" }}, {{ os }} or {{ arch }}',
        };
      }
      const problem = workspacePathProblem(file);
      if (problem || file.startsWith("~/")) {
        return {
          ok: false,
          error: `cache key '${template}': checksum file '${file}' ${
            problem ?? "must be in the checkout"
          }`,
        };
      }
      parts.push(checksum(join(src, file), src));
    }
  }
  parts.push(template.slice(last));
  return { ok: true, key: (await Promise.all(parts)).join("") };
}

/** The file's SHA-256; `missing` when absent or (through a symlink) outside the checkout. */
async function checksum(path: string, src: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    const [real, root] = await Promise.all([Deno.realPath(path), Deno.realPath(src)]);
    if (!real.startsWith(root + "/")) return "missing";
    bytes = await Deno.readFile(real);
  } catch {
    return "missing";
  }
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return hex(digest);
}
