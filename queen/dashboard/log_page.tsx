/**
 * `/jobs/:id/log`: a job's whole stored log with line numbers (a window of it: the end, or around
 * `?line=`), links to any line (`#L120`, ranges `#L120-L140` with the script), find-in-log over
 * the whole log (`?q=`, answered by the queen from the stored log), and timestamps per line on
 * demand (`?ts=1`). All of it works without JavaScript.
 */
import { Layout } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";
import type { LineWindow, LogSearch } from "./log_lines.ts";
import { newAnsi } from "./output.ts";

/** What the log page shows. */
export interface LogPageData {
  jobId: string;
  window: LineWindow;
  times?: (number | null)[];
  query?: string;
  search?: LogSearch;
  cursor?: string;
  /** The query string to keep in links (line, ts, q). */
  params: { line?: number; ts?: boolean; q?: string };
}

/** The page's own URL with some parameters changed. */
function hrefWith(data: LogPageData, change: Partial<LogPageData["params"]> & { cursor?: string }) {
  const p = { ...data.params, ...change };
  const search = new URLSearchParams();
  if (p.line) search.set("line", String(p.line));
  if (p.ts) search.set("ts", "1");
  if (p.q) search.set("q", p.q);
  if (change.cursor) search.set("cursor", change.cursor);
  const text = search.toString();
  return `/jobs/${encodeURIComponent(data.jobId)}/log${text ? `?${text}` : ""}`;
}

/** The text of a match with the query marked. */
function Marked(props: { text: string; query: string }) {
  const at = props.text.toLowerCase().indexOf(props.query.toLowerCase());
  if (at === -1) return <>{props.text}</>;
  return (
    <>
      {props.text.slice(0, at)}
      <mark>{props.text.slice(at, at + props.query.length)}</mark>
      {props.text.slice(at + props.query.length)}
    </>
  );
}

function SearchResults(props: { data: LogPageData }) {
  const { data } = props;
  const search = data.search!;
  const query = data.query!;
  return (
    <section class="log-search" aria-labelledby="search-title">
      <h2 id="search-title">
        {`${search.matches.length} ${
          search.matches.length === 1 ? "line" : "lines"
        } with “${query}”`}
      </h2>
      <p class="muted" data-field="searched">
        {search.next
          ? `Searched ${search.searched.toLocaleString("en")} of ${
            search.size.toLocaleString("en")
          } bytes.`
          : `Searched the whole log (${search.size.toLocaleString("en")} bytes).`}
      </p>
      <ol class="matches">
        {search.matches.map((m) => (
          <li key={m.line}>
            <a href={`${hrefWith(data, { line: m.line, q: query })}#L${m.line}`}>
              {`line ${m.line}`}
            </a>
            {": "}
            <code>
              <Marked text={m.text} query={query} />
            </code>
          </li>
        ))}
      </ol>
      {search.next && (
        <a class="button" href={hrefWith(data, { cursor: search.next })} rel="next">
          Search further
        </a>
      )}
    </section>
  );
}

/** One numbered line (a block, so no newline between them); its number links to it. */
function lineHtml(n: number, html: string, time: number | null | undefined): string {
  const stamp = time === undefined
    ? ""
    : `<span class="lts">${time === null ? "" : new Date(time).toISOString().slice(11, 23)}</span>`;
  return `<span class="line" id="L${n}"><a class="ln" href="#L${n}">${n}</a>${stamp}` +
    `<span class="lt">${html}</span></span>`;
}

/** The log page. */
export function LogPage(props: { ctx: PageContext; data: LogPageData }) {
  const { data } = props;
  const { window } = data;
  const ansi = newAnsi();
  const body = window.lines.map((text, i) =>
    lineHtml(window.first + i, ansi.ansi_to_html(text), data.times?.[i])
  ).join("");
  const last = window.first + window.lines.length - 1;
  const id = encodeURIComponent(data.jobId);
  return (
    <Layout ctx={props.ctx} title={`Log of job ${data.jobId}`}>
      <header class="job-head">
        <h1>
          Log of job <a href={`/jobs/${id}`}>{data.jobId}</a>
        </h1>
        <div class="actions">
          <a class="button" href={hrefWith(data, { ts: !data.params.ts })}>
            {data.params.ts ? "Hide timestamps" : "Show timestamps"}
          </a>
          <a class="button" href={`/api/jobs/${id}/log`}>Raw log</a>
        </div>
      </header>
      <form class="log-find" method="get" action={`/jobs/${id}/log`} role="search">
        <label for="q">Find in the whole log</label>
        <input id="q" name="q" type="search" value={data.query ?? ""} maxlength={200} />
        {data.params.ts && <input type="hidden" name="ts" value="1" />}
        <button type="submit">Find</button>
      </form>
      {data.search && <SearchResults data={data} />}
      <section class="log-lines" aria-labelledby="lines-title">
        <h2 id="lines-title">
          {window.lines.length
            ? `Lines ${window.first.toLocaleString("en")} to ${last.toLocaleString("en")} of ${
              window.total.toLocaleString("en")
            }`
            : "The log is empty"}
        </h2>
        {window.first > 1 && (
          <a
            class="earlier"
            href={`${hrefWith(data, { line: Math.max(1, window.first - 900) })}`}
          >
            Earlier lines
          </a>
        )}
        <pre
          class="log numbered"
          id="log-lines"
          data-first={window.first}
          data-last={last}
          data-total={window.total}
          tabindex={0}
          aria-label="Log lines"
        >
          <code dangerouslySetInnerHTML={{ __html: body }} />
        </pre>
        {last < window.total && (
          <a class="later" href={hrefWith(data, { line: last + 1 })}>Later lines</a>
        )}
      </section>
    </Layout>
  );
}
