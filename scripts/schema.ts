/** Writes protocol/schema.json from the zod schemas (`deno task schema`). */
import { protocolJsonSchema } from "../protocol/mod.ts";

const path = new URL("../protocol/schema.json", import.meta.url);
await Deno.writeTextFile(path, JSON.stringify(protocolJsonSchema(), null, 2) + "\n");
console.log(`wrote ${path.pathname}`);
