/**
 * Which `Builds` goes with a core. The queen's `mod.ts` attaches the one over its database; a
 * core used alone (tests, embedding) gets one in memory on first use, so the intake can always
 * make builds without the core knowing of them.
 * @module
 */
import { Builds } from "./builds.ts";
import type { BuildCore } from "./builds.ts";
import { MemoryBuildStore } from "./store.ts";

const registry = new WeakMap<BuildCore, Builds>();

/** Makes `builds` the builds of `core`. */
export function attachBuilds(core: BuildCore, builds: Builds): void {
  registry.set(core, builds);
}

/** The builds of `core`, kept in memory when none were attached. */
export function buildsOf(core: BuildCore): Builds {
  let builds = registry.get(core);
  if (!builds) registry.set(core, builds = new Builds(core, new MemoryBuildStore()));
  return builds;
}
