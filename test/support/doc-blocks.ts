// Reads the documentation's pages and their fenced blocks, with the markers that say how a block is run
// (docs/development/tests.md, "Every example runs"): the shared ground of test/docs.test.ts and
// test/docs-examples.test.ts.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { root } from "./cli-process.ts";

/** How a block is treated: run, run in an empty folder, run only when programs exist, or only checked. */
export type Marker =
  | { kind: "run" }
  | { kind: "scratch" }
  | { kind: "needs"; tools: string[] }
  | { kind: "not-run"; reason: string }
  | { kind: "unknown"; text: string };

export interface DocBlock {
  /** The page, relative to the repository root: "README.md", "docs/guides/clients.md". */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's language, "" when none. */
  language: string;
  code: string;
  marker: Marker;
}

/** Languages whose blocks are examples: shell is run with bash, TypeScript with tsx. */
export const exampleLanguages = new Set(["sh", "bash", "ts"]);

/** README.md first, then every page under docs/ in path order. */
export function docPages(): string[] {
  const pages: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".md")) pages.push(path);
    }
  };
  walk("docs");
  return ["README.md", ...pages];
}

export function readPage(file: string): string {
  return readFileSync(join(root, file), "utf8");
}

function parseMarker(comment: string | undefined): Marker {
  if (comment === undefined) return { kind: "run" };
  const text = comment.trim();
  if (text === "run in a scratch folder") return { kind: "scratch" };
  const needs = /^needs:\s*(.+)$/.exec(text);
  if (needs) return { kind: "needs", tools: needs[1]!.split(/\s+/).filter(Boolean) };
  const notRun = /^not run:\s*(.*)$/s.exec(text);
  if (notRun) return { kind: "not-run", reason: notRun[1]!.trim() };
  return { kind: "unknown", text };
}

/** Every fenced block of a page, with the marker comment on the line before it (blank lines between allowed). */
export function blocksOf(file: string, text = readPage(file)): DocBlock[] {
  const lines = text.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let before = start - 1;
    while (before >= 0 && lines[before]!.trim() === "") before--;
    const comment = before >= 0 ? /^<!--(.*)-->\s*$/s.exec(lines[before]!.trim())?.[1] : undefined;
    blocks.push({
      file,
      line: start + 1,
      language: open[1]!,
      code: `${body.join("\n")}\n`,
      marker: parseMarker(comment),
    });
  }
  return blocks;
}

/** The examples of every page, in page order. */
export function docExamples(): DocBlock[] {
  return docPages()
    .flatMap((file) => blocksOf(file))
    .filter((block) => exampleLanguages.has(block.language));
}

/** What a block must print: `# → text` in shell, `// → text` in TypeScript. */
export function expectations(block: DocBlock): string[] {
  const pattern = block.language === "ts" ? /\/\/ → (.+)$/ : /# → (.+)$/;
  return block.code
    .split("\n")
    .map((line) => pattern.exec(line)?.[1]?.trim())
    .filter((text): text is string => Boolean(text));
}

/** Names a shell block assigns as environment variables (`NAME=value cmd`, `export NAME=…`), minus the shell's own
 * variables (assigned and then read as `$NAME` in the same block). */
export function assignedVariables(code: string): string[] {
  const names = new Set<string>();
  const commands = code
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.replace(/(^|\s)#.*$/, ""))
    .flatMap((line) => line.split(/;|&&|\|\||\||\$\(|\(/));
  for (let command of commands) {
    command = command.trim().replace(/^export\s+/, "");
    for (;;) {
      const assignment = /^([A-Z][A-Z0-9_]*)=(?:'[^']*'|"[^"]*"|\S*)\s*/.exec(command);
      if (!assignment) break;
      names.add(assignment[1]!);
      command = command.slice(assignment[0].length);
    }
  }
  return [...names].filter((name) => !new RegExp(`\\$\\{?${name}\\b`).test(code));
}

export function describeBlock(block: DocBlock): string {
  return `${block.file}:${block.line}`;
}

export function relativeToRoot(path: string): string {
  return relative(root, path);
}
