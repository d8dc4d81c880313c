/**
 * `PATCH /api/projects/:name` as a JSON merge patch (RFC 7396): objects merge, `null` removes
 * a member, anything else replaces it. A secret sent back as the API shows it (`***`) keeps
 * its value, so a client may send back what it read.
 */
import type { Project } from "../../protocol/mod.ts";
import { SECRET_MASK } from "../../protocol/mod.ts";

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `target` with `patch` applied as RFC 7396 says; neither is changed. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Json = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** Drops `object[key]` when it is the mask, so the stored value stays. */
function dropMask(object: unknown, key: string): void {
  if (isObject(object) && object[key] === SECRET_MASK) delete object[key];
}

/** Drops every `***` in `object`, at any depth. */
function dropMasks(object: unknown): void {
  if (!isObject(object)) return;
  for (const [key, value] of Object.entries(object)) {
    dropMask(object, key);
    dropMasks(value);
  }
}

/**
 * The project `patch` makes of `project`, to be validated as a whole. Masked secrets keep their
 * values; an `auth` of another type replaces the old one instead of merging into it.
 */
export function patchProject(project: Project, patch: Json): unknown {
  const edit = structuredClone(patch);
  // Read-only fields of the view, so that a client may send back what it read.
  delete edit.createdAt;
  delete edit.updatedAt;
  const base: Json = structuredClone(project);
  if (isObject(edit.secrets)) {
    for (const name of Object.keys(edit.secrets)) dropMask(edit.secrets, name);
  }
  dropMask(edit, "webhook_secret");
  // Secret-named config values are shown as `***` too (see `projectView`).
  if (isObject(edit.branches)) {
    for (const settings of Object.values(edit.branches)) {
      if (isObject(settings)) dropMasks(settings.config);
    }
  }
  const auth = isObject(edit.repo) ? edit.repo.auth : undefined;
  if (isObject(auth)) {
    dropMask(auth, "password");
    dropMask(auth, "key");
    const baseRepo = base.repo as Json;
    if (isObject(baseRepo.auth) && auth.type !== undefined && auth.type !== baseRepo.auth.type) {
      delete baseRepo.auth;
    }
  }
  return mergePatch(base, edit);
}
