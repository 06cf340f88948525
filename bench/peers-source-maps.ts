// Preloaded into the coordinator and the agent by the peers benchmark when it profiles (PEERS_PROFILE): tsx runs
// Iris's TypeScript with its whitespace minified, so a CPU profile's line numbers all say 1. This turns on Node's
// source-map support, and at the first SIGUSR2 (the one that starts bench/profile-hook.ts's profiler, before it
// samples anything) writes <BENCH_PROFILE_DIR>/sourcemaps.json: the source map of every loaded file of Iris's own
// code, by URL, so that bench/peers-profile.ts can name each function's real file:line.
import { readdirSync, writeFileSync } from "node:fs";
import { findSourceMap, setSourceMapsSupport } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const dir = process.env.BENCH_PROFILE_DIR;
const root = fileURLToPath(new URL("..", import.meta.url));

function typescriptFiles(folder: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) files.push(...typescriptFiles(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) files.push(path);
  }
  return files;
}

if (dir) {
  setSourceMapsSupport(true);
  process.once("SIGUSR2", () => {
    const maps: Record<string, unknown> = {};
    for (const folder of ["coordinator", "agent", "common", "gen"]) {
      for (const file of typescriptFiles(join(root, folder))) {
        const url = pathToFileURL(file).href;
        const map = findSourceMap(url);
        if (map) maps[url] = map.payload;
      }
    }
    writeFileSync(join(dir, "sourcemaps.json"), JSON.stringify(maps));
  });
}
