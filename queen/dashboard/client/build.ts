/// <reference lib="dom" />
/**
 * Keeps a build page's cells live: while the build runs, its state is read from the API every
 * two seconds and each cell's badge follows its job. Ends when the build is done.
 * @module
 */

interface BuildState {
  status: string;
  result: string | null;
  jobs: { id: string; status: string; result: string | null }[];
}

const EVERY_MS = 2000;

function setBadge(el: Element | null, state: string): void {
  if (!el || el.textContent === state) return;
  el.textContent = state;
  el.className = `badge badge-${state}`;
}

/** Follows the build shown in `root` (`#build`) until it is done. */
export function followBuild(root: HTMLElement): void {
  const id = root.dataset.build ?? "";
  const tick = async () => {
    let build: BuildState;
    try {
      const response = await fetch(`/api/builds/${encodeURIComponent(id)}`, {
        headers: { accept: "application/json" },
      });
      if (!response.ok) return void setTimeout(tick, EVERY_MS * 2);
      build = await response.json();
    } catch {
      return void setTimeout(tick, EVERY_MS * 2);
    }
    for (const job of build.jobs) {
      const cell = root.querySelector(`[data-job="${CSS.escape(job.id)}"]`);
      setBadge(cell?.querySelector('[data-field="state"]') ?? null, job.result ?? job.status);
    }
    setBadge(root.querySelector('[data-field="build-state"]'), build.result ?? build.status);
    root.dataset.status = build.status;
    if (build.status !== "done") setTimeout(tick, EVERY_MS);
  };
  setTimeout(tick, EVERY_MS);
}
