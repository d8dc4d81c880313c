/** protocol/schema.json is generated from the zod schemas; this keeps it from going stale. */
import { deepEqual } from "node:assert/strict";
import { protocolJsonSchema } from "../protocol/mod.ts";

Deno.test("protocol/schema.json matches the zod schemas", async () => {
  const path = new URL("../protocol/schema.json", import.meta.url);
  const published = JSON.parse(await Deno.readTextFile(path));
  const current = JSON.parse(JSON.stringify(protocolJsonSchema()));
  deepEqual(
    published,
    current,
    "protocol/schema.json is out of date with the zod schemas; run `deno task schema`",
  );
});
