/**
 * What of the store is sealed (see `secret_box.ts`) and when secrets are forgotten: a job's
 * whole spec (secrets, repository credentials, config) and a project's whole settings are kept
 * only sealed; a finished job keeps no secrets or credentials at all.
 */
import type { DatabaseSync } from "node:sqlite";
import type { JobSpec } from "../protocol/mod.ts";
import { publicSpec } from "./job_state.ts";
import { isSealed } from "./secret_box.ts";
import type { SecretBox } from "./secret_box.ts";
import { unpackText } from "./log_blocks.ts";

/** The additional data binding a job's sealed spec to its row. */
export const jobContext = (id: string) => `job:${id}`;
/** The additional data binding a project's sealed settings to its row. */
export const projectContext = (name: string) => `project:${name}`;

/** Plain JSON (written before sealing existed) or a sealed value, as text. */
export function openText(box: SecretBox, text: string, context: string): string {
  return isSealed(text) ? box.open(text, context) : text;
}

/**
 * `spec` without its secrets and repository credentials: what a finished job keeps. It never
 * runs again (a re-run is a new job, which takes them from the job's project; see `rerun.ts`).
 * The job's view still shows which secrets and which kind of credential it had.
 */
export function eraseSecrets(spec: JobSpec): JobSpec {
  const { secrets: _secrets, ...kept } = spec;
  const { auth: _auth, ...repo } = spec.repo;
  return { ...kept, repo };
}

type Row = Record<string, string | number | null | Uint8Array>;

/**
 * Seals with the current key every job spec and project still in plain JSON (a database from
 * before sealing) or sealed with an older key, erasing the secrets of finished jobs on the way.
 * Returns how many rows were rewritten; throws `SecretKeyError` when one cannot be opened.
 */
export function resealAll(db: DatabaseSync, box: SecretBox): number {
  const current = `enc:v1:${box.keyId}:%`;
  let changed = 0;
  const jobs = db.prepare("SELECT id, status, spec, state FROM jobs WHERE spec NOT LIKE ?")
    .all(current) as Row[];
  const writeJob = db.prepare("UPDATE jobs SET spec = ?, state = ? WHERE id = ?");
  for (const row of jobs) {
    const id = String(row.id);
    let spec = JSON.parse(openText(box, String(row.spec), jobContext(id))) as JobSpec;
    if (row.status === "done") spec = eraseSecrets(spec);
    // Views written before secret-named config.env values were masked showed them.
    const state = JSON.parse(unpackText(row.state));
    if (state?.view?.spec) state.view.spec = publicSpec(state.view.spec);
    writeJob.run(box.seal(JSON.stringify(spec), jobContext(id)), JSON.stringify(state), id);
    changed++;
  }
  const projects = db.prepare("SELECT name, data FROM projects WHERE data NOT LIKE ?")
    .all(current) as Row[];
  const writeProject = db.prepare("UPDATE projects SET data = ? WHERE name = ?");
  for (const row of projects) {
    const name = String(row.name);
    const plain = openText(box, String(row.data), projectContext(name));
    writeProject.run(box.seal(plain, projectContext(name)), name);
    changed++;
  }
  return changed;
}
