/**
 * `--rotate-secret-key` on PostgreSQL: every sealed value of the database (job specs, projects,
 * the sealed values of `strider_meta`) is opened with the old key and sealed with the new one,
 * and the database's key id changes, all in one transaction: a crash or an error leaves the
 * database as it was, sealed with the old key only.
 *
 * Queens starting at once: the rotation holds a transaction-level advisory lock, which a queen
 * checking its key takes shared; a second queen rotating to the same key waits, then finds
 * nothing left to do. A queen still connected with the old key would go on sealing with it, so
 * the rotation refuses while another queen's connection is open on the database.
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Sql } from "postgres";
import type { JobSpec } from "../../protocol/mod.ts";
import { StartupError } from "../errors.ts";
import { eraseSecrets, jobContext, openText, projectContext } from "../sealing.ts";
import type { SecretBox } from "../secret_box.ts";
import { forgetOldKeyFile, openSecretBox } from "../secret_key.ts";
import type { SecretKeyOptions } from "../secret_key.ts";
import { migratePostgres } from "./schema.ts";
import { connectPostgres, QUEEN_APPLICATION, ROTATION_LOCK } from "./store.ts";
import type { PostgresOptions } from "./store.ts";

/** The `application_name` of the rotation's own connection, which other queens do not count. */
const ROTATING_APPLICATION = "strider-queen-rotating";
/** How long connections of queens just stopped are given to go. */
const LEAVING_MS = 5_000;
/** How long the rewrite waits for other queens rotating at once to finish. */
const OTHERS_ROTATING_MS = 60_000;
/** Rows re-sealed per statement. */
const CHUNK = 500;
/**
 * Seconds one statement of the rotation may take: it may wait for another queen's rotation, and
 * rewrite the tables.
 */
const ROTATION_STATEMENT_SECONDS = 3600;

/**
 * The key a queen seals with in the database at `options.url`, rotating first when asked. With
 * `STRIDER_SECRET_KEY` the new key is that one and the old one is given apart (the key file,
 * `STRIDER_SECRET_KEY_OLD`, `--old-secret-key`); without it a new key file is made, the old one
 * kept as `secret-key.old` until the database holds nothing sealed with it. A `secret-key.old`
 * left by a rotation that did not finish (refused, or a crash) makes the next start finish it.
 */
export async function databaseKey(
  dataDir: string,
  keys: SecretKeyOptions,
  options: PostgresOptions,
  log: (message: string) => void,
): Promise<SecretBox> {
  const fromFile = keys.secretKey === undefined;
  const unfinished = fromFile && existsSync(join(dataDir, "secret-key.old"));
  const box = openSecretBox(dataDir, {
    ...keys,
    rotateSecretKey: keys.rotateSecretKey && fromFile && !unfinished,
  });
  if (!keys.rotateSecretKey && !unfinished) return box;
  if (unfinished) {
    log(
      `finishing the key rotation that ${join(dataDir, "secret-key.old")} is left from` +
        (keys.rotateSecretKey ? " (no new key is made: rotate again for one)" : ""),
    );
  }
  const changed = await rotateSecretKey(options, box);
  log(`secret key rotated: ${changed} sealed values re-sealed with key ${box.keyId}`);
  if (fromFile) forgetOldKeyFile(dataDir);
  return box;
}

/**
 * Re-seals the database at `options.url` with `box`'s current key (its older keys open what is
 * there). Returns how many values were sealed again. Throws a `StartupError` when the database is
 * sealed with a key the box does not hold, or while other queens are connected.
 */
export async function rotateSecretKey(options: PostgresOptions, box: SecretBox): Promise<number> {
  const sql = await connectPostgres({
    url: options.url,
    max: 1,
    statementSeconds: ROTATION_STATEMENT_SECONDS,
    application: ROTATING_APPLICATION,
  });
  try {
    await migratePostgres(sql);
    const changed = await sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${ROTATION_LOCK})`;
      const [row] = await tx`SELECT value FROM strider_meta WHERE key = 'key-id'`;
      const sealedWith = row ? String(row.value) : undefined;
      if (sealedWith !== undefined && !box.keyIds.includes(sealedWith)) {
        throw new StartupError(
          `--rotate-secret-key: the database is sealed with key ${sealedWith}, which is neither ` +
            "the new key nor an old one given: give the key the queens used until now as " +
            "--old-secret-key FILE or STRIDER_SECRET_KEY_OLD (or in <data>/secret-key)",
        );
      }
      if (sealedWith !== undefined && sealedWith !== box.keyId) {
        // A queen that just stopped may take a moment to leave (its backends end after it).
        let n = 0;
        for (let waited = 0; waited <= LEAVING_MS; waited += 200) {
          [{ n }] = await tx`SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND (application_name = ${QUEEN_APPLICATION}
              OR starts_with(application_name, ${QUEEN_APPLICATION + ":"}))`;
          if (n === 0) break;
          await tx`SELECT pg_sleep(0.2)`;
        }
        if (n > 0) {
          throw new StartupError(
            `--rotate-secret-key: other queens are connected to this database (${n} ` +
              "connections) and seal with the old key: stop every queen of the cluster, " +
              "rotate with one, then start the others with the new STRIDER_SECRET_KEY",
          );
        }
      }
      const changed = await resealAll(tx as unknown as Sql, box);
      await tx`INSERT INTO strider_meta (key, value) VALUES ('key-id', ${box.keyId})
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
      return changed;
    });
    if (changed) {
      // The rows' earlier versions, sealed with the old key, stay in the tables' files until
      // they are rewritten, and a rewrite keeps those an open transaction may still see: another
      // queen rotating at once waited on the lock with such a snapshot, so its end is awaited.
      // No other queen is connected, so the exclusive lock the rewrite takes is harmless.
      for (let waited = 0; waited < OTHERS_ROTATING_MS; waited += 200) {
        const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = ${ROTATING_APPLICATION}
            AND pid <> pg_backend_pid()`;
        if (n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await sql.unsafe("VACUUM FULL jobs, projects, strider_meta");
    }
    return changed;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * Seals with the current key every value sealed with another, a chunk at a time (each chunk's
 * rows then carry the current key, so the next query finds the rest). Finished jobs lose their
 * secrets on the way, as they do when they end.
 */
async function resealAll(tx: Sql, box: SecretBox): Promise<number> {
  const current = `enc:v1:${box.keyId}:%`;
  let changed = 0;
  for (;;) {
    const rows = await tx`SELECT id, status, spec FROM jobs WHERE spec NOT LIKE ${current}
      ORDER BY position LIMIT ${CHUNK}`;
    if (!rows.length) break;
    const ids = rows.map((row) => String(row.id));
    const specs = rows.map((row, i) => {
      let spec = JSON.parse(openText(box, String(row.spec), jobContext(ids[i]))) as JobSpec;
      if (row.status === "done") spec = eraseSecrets(spec);
      return box.seal(JSON.stringify(spec), jobContext(ids[i]));
    });
    await tx`UPDATE jobs SET spec = u.spec
      FROM unnest(${ids}::text[], ${specs}::text[]) AS u(id, spec) WHERE jobs.id = u.id`;
    changed += rows.length;
  }
  for (;;) {
    const rows = await tx`SELECT name, data FROM projects WHERE data NOT LIKE ${current}
      LIMIT ${CHUNK}`;
    if (!rows.length) break;
    const names = rows.map((row) => String(row.name));
    const data = rows.map((row, i) =>
      box.seal(openText(box, String(row.data), projectContext(names[i])), projectContext(names[i]))
    );
    await tx`UPDATE projects SET data = u.data
      FROM unnest(${names}::text[], ${data}::text[]) AS u(name, data)
      WHERE projects.name = u.name`;
    changed += rows.length;
  }
  const meta = await tx`SELECT key, value FROM strider_meta
    WHERE value LIKE 'enc:v1:%' AND value NOT LIKE ${current}`;
  for (const row of meta) {
    const context = `meta:${row.key}`;
    await tx`UPDATE strider_meta SET value = ${
      box.seal(box.open(String(row.value), context), context)
    }
      WHERE key = ${row.key}`;
    changed++;
  }
  return changed;
}
