/**
 * The dashboard's browser script is built from the queen's own modules: the committed bundle is
 * what `deno task bundle` makes of today's sources, and it carries no copy of anything.
 */
import { equal, ok } from "node:assert/strict";
import { bundleClient, CLIENT_BUNDLE } from "../scripts/bundle_client.ts";

Deno.test("the committed browser script is the bundle of today's sources", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fresh = `${dir}/app.js`;
    await bundleClient(fresh);
    const committed = await Deno.readTextFile(CLIENT_BUNDLE);
    ok(
      committed === await Deno.readTextFile(fresh),
      "queen/dashboard/client/app.js is stale: run `deno task bundle` and commit it",
    );
    // Nothing for the browser to fetch besides this file (CSP allows scripts from the queen).
    equal(/^\s*import\b/m.test(committed), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
