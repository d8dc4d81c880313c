import { z } from "zod";
import { ArtifactListSchema } from "./artifacts.ts";
import { QueenFrameSchema, WorkerFrameSchema } from "./events.ts";
import { JobSpecSchema } from "./job_spec.ts";
import { ProjectSchema, ProjectViewSchema } from "./project.ts";
import { JobViewSchema, RecordedEventSchema } from "./job_view.ts";
import { BrowserToQueenSchema, QueenToBrowserSchema } from "./browser.ts";
import { OUTPUT_FRAME_LAYOUT, OUTPUT_FRAME_VERSION } from "./output_frame.ts";
import { BuildListSchema, BuildViewSchema, SubmittedSchema } from "./build.ts";

/** Builds the JSON Schema document published as `protocol/schema.json`. */
export function protocolJsonSchema(): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  const named: [string, z.ZodType][] = [
    ["JobSpec", JobSpecSchema],
    ["WorkerFrame", WorkerFrameSchema],
    ["QueenFrame", QueenFrameSchema],
    ["QueenToBrowser", QueenToBrowserSchema],
    ["BrowserToQueen", BrowserToQueenSchema],
    ["JobView", JobViewSchema],
    ["RecordedEvent", RecordedEventSchema],
    ["Project", ProjectSchema],
    ["ProjectView", ProjectViewSchema],
    ["ArtifactList", ArtifactListSchema],
    ["BuildView", BuildViewSchema],
    ["BuildList", BuildListSchema],
    ["Submitted", SubmittedSchema],
  ];
  for (const [id, schema] of named) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, { io: "input", unrepresentable: "any" });
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "strider protocol",
    $defs: {
      ...schemas,
      // Bytes, not JSON: described here so that the document covers every frame a worker sends.
      BinaryOutputFrame: {
        description: "A worker's job output as a WebSocket binary frame, sent only when the " +
          "queen's drone:query-info and the worker's drone:info both announce binary_output. " +
          "It means the WorkerFrame job:stdout / job:stderr / job:cmd:stdout / job:cmd:stderr " +
          "with the same fields; the layout (version " + OUTPUT_FRAME_VERSION + ") is in " +
          "x-layout, offsets and sizes in bytes.",
        "x-layout": OUTPUT_FRAME_LAYOUT,
      },
    },
  };
}
