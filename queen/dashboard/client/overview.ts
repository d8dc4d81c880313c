/// <reference lib="dom" />
/** The overview, kept current from `overview` frames with the rows the queen renders. */
import { DroneRow, Empty, JobRow, QueueRow } from "../overview_rows.tsx";
import { fragment } from "./dom.ts";
import { Live } from "./socket.ts";

/** Replaces a table's rows, keeping keyboard focus on the same link when it is still there. */
function replaceRows(id: string, rows: unknown[], columns: number, emptyText: string): void {
  const tbody = document.querySelector(`#${id} tbody`);
  if (!tbody) return;
  const active = document.activeElement;
  const focused = active && tbody.contains(active) ? active.getAttribute("href") : null;
  tbody.replaceChildren(
    fragment(rows.length ? rows.join("") : Empty({ columns, text: emptyText })),
  );
  if (focused) {
    tbody.querySelector<HTMLElement>(`a[href="${CSS.escape(focused)}"]`)?.focus();
  }
}

/** Follows the overview until the page is left. */
export function followOverview(): void {
  new Live(
    (live) => live.send({ event: "overview:follow" }),
    (frame) => {
      if (frame.event !== "overview") return;
      const drones = frame.drones.map((d) => String(DroneRow({ drone: d })));
      replaceRows("drones", drones, 7, "No drones are connected.");
      replaceRows(
        "queue",
        frame.queue.map((j) => String(QueueRow({ job: j }))),
        4,
        "No jobs are waiting.",
      );
      replaceRows("jobs", frame.jobs.map((j) => String(JobRow({ job: j }))), 8, "No jobs yet.");
    },
  );
}
