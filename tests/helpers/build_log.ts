/**
 * Output that looks like a build's: compiler lines with paths and flags, test results with
 * timings, warnings with source excerpts, a few non-ASCII names. Seeded, so every run makes the
 * same bytes. Used to measure and test compression on typical text, not on `yes` output.
 */

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  "parser",
  "scheduler",
  "queue",
  "lease",
  "drone",
  "worker",
  "store",
  "codec",
  "sandbox",
  "mirror",
  "cache",
  "artifact",
  "report",
  "résumé",
  "naïve",
  "über",
  "config",
  "index",
];

/** About `bytes` of build output, whole lines, ending with a newline. */
export function buildLog(bytes: number, seed = 1): string {
  const next = random(seed);
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)];
  const int = (n: number) => Math.floor(next() * n);
  const lines: string[] = [];
  let size = 0;
  let clock = 0;
  // One build has one version and one set of flags.
  const version = `${int(9)}.${int(20)}.${int(100)}`;
  while (size < bytes) {
    clock += next() * 0.05;
    const at = `[${clock.toFixed(3).padStart(9)}]`;
    const module = `${pick(WORDS)}_${int(400)}`;
    const kind = next();
    let line: string;
    if (kind < 0.55) {
      line = `${at} CC src/${pick(WORDS)}/${module}.c -o build/obj/${module}.o -O2 -Wall ` +
        `-Iinclude -DVERSION=${version}`;
    } else if (kind < 0.85) {
      line = `${at} test ${pick(WORDS)}::${module}::case_${int(5000)} ... ` +
        `${next() < 0.97 ? "ok" : "FAILED"} (${(next() * 300).toFixed(1)} ms)`;
    } else if (kind < 0.95) {
      line = `${at} warning: unused variable '${pick(WORDS)}${int(90)}' ` +
        `[-Wunused-variable]\n    ${int(900)} |   int ${pick(WORDS)}${int(90)} = ${int(65536)};`;
    } else {
      line = `${at} downloaded ${pick(WORDS)}-${int(10)}.${int(30)}.tar.gz ` +
        `sha256=${
          Array.from({ length: 8 }, () => int(2 ** 32).toString(16).padStart(8, "0")).join("")
        }`;
    }
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join("\n") + "\n";
}
