// Where Iris's CPU goes per request in the peers benchmark: reads the coordinator's and the agent's V8 CPU profiles
// (bench/profile-hook.ts, one window: Iris's 100-concurrent streamed phase) and splits each process's busy time
// into Iris's own code (coordinator/, agent/, common/, gen/), each library and Node's internals; then lists Iris's
// hottest functions by self time and by "attributed" time: every sample charged to the innermost Iris function on
// its stack, so that the library and native work a function asks for (JSON, pino, pg, fetch) counts as its cost.
import { existsSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CallFrame, CpuProfile } from "./profile-summary.ts";
import { markdownTable, sleep } from "./stats.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const irisFolders = ["coordinator/", "agent/", "common/", "gen/"];

/** The repository-relative path of Iris's own code, else undefined. */
function irisPath(url: string): string | undefined {
  const path = url.replace(/^file:\/\//, "");
  if (!path.startsWith(root)) return undefined;
  const relative = path.slice(root.length);
  return irisFolders.some((folder) => relative.startsWith(folder)) ? relative : undefined;
}

/** Where a frame's self time goes in the split: Iris, a package, Node, GC, native. */
function groupOf(frame: CallFrame): string {
  const name = frame.functionName;
  if (name === "(garbage collector)") return "GC";
  if (name === "(program)") return "V8/native, unattributed (program)";
  if (frame.url === "") return "V8 builtins & native calls (JSON, Buffer, socket writes ...)";
  // esbuild's keepNames (tsx turns it on): `__name(fn, "name")`, a defineProperty on every function it creates
  if (name === "__name") return "tsx/esbuild keepNames helper (__name), in Iris's files";
  const iris = irisPath(frame.url);
  if (iris) return `Iris code: ${iris.slice(0, iris.indexOf("/") + 1)}`;
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(frame.url)?.[1];
  if (pkg) return `library: ${pkg}`;
  if (frame.url.startsWith("node:")) {
    const module = frame.url.replace(/^node:(internal\/)?(deps\/)?/, "").split("/")[0]!;
    return `Node.js: ${module}`;
  }
  return "other";
}

/**
 * Names a function `name file:line` by its source line: through the source maps bench/peers-source-maps.ts wrote
 * (tsx minifies whitespace, so V8's own line is 1), else V8's line.
 */
function functionNamer(sourceMapsFile: string | undefined): (frame: CallFrame) => string {
  const payloads =
    sourceMapsFile && existsSync(sourceMapsFile)
      ? (JSON.parse(readFileSync(sourceMapsFile, "utf8")) as Record<string, unknown>)
      : {};
  const maps = new Map<string, SourceMap | undefined>();
  return (frame) => {
    if (!maps.has(frame.url)) {
      const payload = payloads[frame.url];
      maps.set(frame.url, payload ? new SourceMap(payload as ConstructorParameters<typeof SourceMap>[0]) : undefined);
    }
    const entry = maps.get(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber);
    const line =
      entry && "originalLine" in entry
        ? `${entry.originalLine + 1}`
        : `${frame.lineNumber + 1}${sourceMapsFile ? "?" : ""}`;
    return `${frame.functionName || "(anonymous)"} ${irisPath(frame.url) ?? frame.url}:${line}`;
  };
}

export interface ProcessProfile {
  process: string;
  busyMs: number;
  /** requests completed in the profiled window */
  requests: number;
  /** the process's CPU per request in that window from /proc (all its threads), to turn shares into time */
  cpuMsPerRequest: number;
  groups: [group: string, ms: number][];
  irisSelf: [fn: string, ms: number][];
  irisAttributed: [fn: string, ms: number][];
  irisFilesAttributed: [file: string, ms: number][];
}

export function readProcessProfile(
  processName: string,
  file: string,
  requests: number,
  cpuMsPerRequest: number,
  sourceMapsFile?: string,
): ProcessProfile {
  const functionKey = functionNamer(sourceMapsFile);
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  // a sample lasts until the next one (Chrome DevTools' convention)
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  const stamps = profile.timeDeltas.map((delta) => (t += delta));
  for (let i = 0; i < profile.samples.length; i++) {
    const duration = (i + 1 < stamps.length ? stamps[i + 1]! : profile.endTime) - stamps[i]!;
    selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + Math.max(0, duration));
  }
  const innermostIris = new Map<number, CallFrame | null>();
  const irisAncestor = (id: number): CallFrame | null => {
    const known = innermostIris.get(id);
    if (known !== undefined) return known;
    const frame = byId.get(id)!.callFrame;
    const up = parent.get(id);
    const found = irisPath(frame.url) ? frame : up === undefined ? null : irisAncestor(up);
    innermostIris.set(id, found);
    return found;
  };

  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  const groups = new Map<string, number>();
  const irisSelf = new Map<string, number>();
  const irisAttributed = new Map<string, number>();
  const irisFiles = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === "(idle)" || frame.functionName === "(root)") continue;
    busyUs += us;
    add(groups, groupOf(frame), us);
    if (irisPath(frame.url)) add(irisSelf, functionKey(frame), us);
    const owner = irisAncestor(id);
    if (owner) {
      add(irisAttributed, functionKey(owner), us);
      add(irisFiles, irisPath(owner.url)!, us);
    }
  }
  const sorted = (map: Map<string, number>) =>
    [...map].map(([key, us]): [string, number] => [key, us / 1000]).sort((a, b) => b[1] - a[1]);
  return {
    process: processName,
    busyMs: busyUs / 1000,
    requests: Math.max(1, requests),
    cpuMsPerRequest,
    groups: sorted(groups),
    irisSelf: sorted(irisSelf),
    irisAttributed: sorted(irisAttributed),
    irisFilesAttributed: sorted(irisFiles),
  };
}

export function profileMarkdown(profiles: ProcessProfile[], topN = 15): string {
  const sections: string[] = [];
  for (const p of profiles) {
    const pct = (ms: number) => `${((100 * ms) / p.busyMs).toFixed(1)}%`;
    // µs of CPU per request: the share of the samples times the CPU /proc measured (wall-clock samples on a busy
    // machine overstate the time itself, as a thread waiting for a core looks busy; the split stays right)
    const perRequest = (ms: number) => ((ms / p.busyMs) * p.cpuMsPerRequest * 1000).toFixed(1);
    const rows = (list: [string, number][], n: number) =>
      list.slice(0, n).map(([name, ms], i) => [String(i + 1), `\`${name}\``, ms.toFixed(0), pct(ms), perRequest(ms)]);
    const irisShare = p.groups.filter(([group]) => group.startsWith("Iris code")).reduce((sum, [, ms]) => sum + ms, 0);
    sections.push(
      `#### ${p.process}: ${p.cpuMsPerRequest.toFixed(3)} ms CPU per request (/proc), ${p.busyMs.toFixed(0)} ms of ` +
        `busy samples; Iris's own code is ${pct(irisShare)} of it by self time\n\n` +
        markdownTable(
          ["where the self time goes", "ms", "% of busy", "≈ µs CPU/request"],
          p.groups.slice(0, 18).map(([g, ms]) => [g, ms.toFixed(0), pct(ms), perRequest(ms)]),
        ) +
        `\n\nTop ${topN} Iris functions by self time:\n\n` +
        markdownTable(
          ["#", "function (file:line)", "self ms", "% of busy", "≈ µs CPU/request"],
          rows(p.irisSelf, topN),
          ["r", "l", "r", "r", "r"],
        ) +
        `\n\nTop ${topN} Iris functions by attributed time (self + the library/native work below them, up to the ` +
        `next Iris frame):\n\n` +
        markdownTable(
          ["#", "function (file:line)", "ms", "% of busy", "≈ µs CPU/request"],
          rows(p.irisAttributed, topN),
          ["r", "l", "r", "r", "r"],
        ) +
        `\n\nIris files by attributed time:\n\n` +
        markdownTable(["#", "file", "ms", "% of busy", "≈ µs CPU/request"], rows(p.irisFilesAttributed, 12), [
          "r",
          "l",
          "r",
          "r",
          "r",
        ]),
    );
  }
  return sections.join("\n\n");
}

/**
 * The agent's SIGUSR2 profiler (bench/profile-hook.ts preloaded through NODE_OPTIONS, writing into `dir`):
 * the same two steps as the coordinator's startProfile()/stopProfile() in bench/coordinator-process.ts.
 */
export function agentProfiler(pid: number, dir: string): { start(): Promise<void>; stop(): Promise<string> } {
  let count = 0;
  const waitFor = async (file: string) => {
    for (let waited = 0; !existsSync(file); waited += 50) {
      if (waited > 30_000) throw new Error(`the agent's profiler did not write ${file} within 30 s`);
      await sleep(50);
    }
  };
  return {
    async start() {
      process.kill(pid, "SIGUSR2");
      await waitFor(join(dir, `coordinator-${count + 1}.started`));
    },
    async stop() {
      const file = join(dir, `coordinator-${++count}.cpuprofile`);
      process.kill(pid, "SIGUSR2");
      await waitFor(file);
      return file;
    },
  };
}

// `tsx bench/peers-profile.ts NAME file.cpuprofile REQUESTS CPU_MS_PER_REQUEST [sourcemaps.json]` summarises a saved
// profile
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [name, file, requests, cpuMs, maps] = process.argv.slice(2);
  if (!name || !file)
    throw new Error(
      "usage: tsx bench/peers-profile.ts NAME file.cpuprofile REQUESTS CPU_MS_PER_REQUEST [sourcemaps.json]",
    );
  console.log(
    profileMarkdown([readProcessProfile(name, file, Number(requests ?? 1), Number(cpuMs ?? Number.NaN), maps)]),
  );
}
