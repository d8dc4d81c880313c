/** An earlier part of one output, for readers without JavaScript (the script fetches it inline). */
import { Layout } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";
import { ansiToHtml } from "./output.ts";
import type { OutputPart } from "./output.ts";

/** Characters `part.start` to `end` of an output, with a link to the part before. */
export function OutputPage(
  props: { ctx: PageContext; jobId: string; outputKey: string; part: OutputPart; label: string },
) {
  const { jobId, outputKey, part } = props;
  const end = part.start + part.text.length;
  const earlier = new URLSearchParams({ key: outputKey, end: String(part.start) });
  return (
    <Layout ctx={props.ctx} title={`Output of job ${jobId}`}>
      <h1>
        Output of <a href={`/jobs/${jobId}`}>job {jobId}</a>: {props.label}
      </h1>
      <p class="note">
        {`Characters ${part.start.toLocaleString("en")} to ${end.toLocaleString("en")}.`}{" "}
        {part.start > 0 && <a href={`/jobs/${jobId}/output?${earlier}`}>Earlier output</a>}
      </p>
      <pre class="log">
        <code dangerouslySetInnerHTML={{ __html: ansiToHtml(part.text) }} />
      </pre>
    </Layout>
  );
}
