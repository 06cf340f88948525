// Fails when source files import each other in a circle (`npm run check:circles`, run by .ci/run). Type-only imports
// count: a type that two files share belongs in a third. madge builds the graph, resolving `.ts`/`.tsx` imports
// through tsconfig.json; a relative import it cannot resolve fails the check too, so no edge goes unseen.
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The folders whose files (and whatever they import) are checked. */
const FOLDERS = ["coordinator", "agent", "common", "client", "tui", "bench"];

/** The part of madge's API used here (the package ships no types). */
interface MadgeResult {
  circular(): string[][];
  warnings(): { skipped: string[] };
}
type Madge = (paths: string[], config: Record<string, unknown>) => Promise<MadgeResult>;

const root = fileURLToPath(new URL("..", import.meta.url));
const madge = createRequire(import.meta.url)("madge") as Madge;
const keepTypeImports = { skipTypeImports: false, skipAsyncImports: false };
const result = await madge(
  FOLDERS.map((folder) => join(root, folder)),
  {
    baseDir: root,
    fileExtensions: ["ts", "tsx"],
    tsConfig: join(root, "tsconfig.json"),
    detectiveOptions: { ts: keepTypeImports, tsx: keepTypeImports },
  },
);

const unresolved = result.warnings().skipped.filter((name) => name.startsWith(".") || name.startsWith("/"));
const circles = result.circular();
for (const name of unresolved) console.error(`cannot resolve the import ${name}`);
for (const circle of circles) console.error(`import circle: ${[...circle, circle[0]].join(" → ")}`);
if (circles.length > 0 || unresolved.length > 0) {
  console.error(
    `${circles.length} import circle(s), ${unresolved.length} unresolved import(s) in ${FOLDERS.join(", ")}`,
  );
  process.exit(1);
}
console.log(`no import circles in ${FOLDERS.join(", ")}`);
