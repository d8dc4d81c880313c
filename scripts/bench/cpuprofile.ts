/**
 * Summarises a V8 CPU profile (`deno run --cpu-prof`, or `BENCH_PROFILE=DIR deno task bench`):
 * the functions with the most time of their own, and the most time including their callees.
 *
 * `deno run --allow-read scripts/bench/cpuprofile.ts FILE.cpuprofile [TOP]`
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self and total milliseconds per function (`name file:line`). */
export function summarise(profile: Profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const own = new Map<number, number>();
  profile.samples.forEach((id, i) =>
    own.set(id, (own.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  );
  const label = (n: ProfileNode) => {
    const file = n.callFrame.url.split("/").slice(-2).join("/");
    return `${n.callFrame.functionName || "(anonymous)"} ${file}:${n.callFrame.lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  for (const [id, micros] of own) {
    all += micros;
    const key = label(nodes.get(id)!);
    self.set(key, (self.get(key) ?? 0) + micros);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = label(nodes.get(at)!);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + micros);
    }
  }
  return { all, self, total };
}

if (import.meta.main) {
  const [file, topText] = Deno.args;
  if (!file) {
    console.error("usage: cpuprofile.ts FILE.cpuprofile [TOP]");
    Deno.exit(2);
  }
  const top = Number(topText ?? 25);
  const { all, self, total } = summarise(JSON.parse(await Deno.readTextFile(file)));
  const show = (title: string, map: Map<string, number>) => {
    console.log(`--- ${title}`);
    for (const [key, micros] of [...map].toSorted((a, b) => b[1] - a[1]).slice(0, top)) {
      const ms = (micros / 1000).toFixed(1).padStart(9);
      console.log(`${ms} ms ${(100 * micros / all).toFixed(1).padStart(5)}%  ${key}`);
    }
  };
  console.log(`${(all / 1000).toFixed(0)} ms sampled`);
  show("self time", self);
  show("total time (with callees)", total);
}
