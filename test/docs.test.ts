// The documentation stays true to the repository: every relative link and #anchor resolves, the configuration
// reference names exactly the variables the code reads, every example block is marked as docs/development/tests.md
// says and parses, and the README stays a front door (at most 300 lines). test/docs-examples.test.ts runs the examples.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { transformSync } from "esbuild";
import { describe, expect, it } from "vitest";
import { root } from "./support/cli-process.ts";
import { assignedVariables, blocksOf, describeBlock, docExamples, docPages, readPage } from "./support/doc-blocks.ts";

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) inFence = !inFence;
    const heading = !inFence && /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const text = heading[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/[`*]/g, "");
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/ /g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** Markdown links outside code: [text](target) and ![alt](target), their text possibly across lines. */
function linksOf(markdown: string): { target: string; line: number }[] {
  let inFence = false;
  const prose = markdown
    .split("\n")
    .map((line) => {
      if (line.startsWith("```")) {
        inFence = !inFence;
        return "";
      }
      return inFence ? "" : line.replace(/`[^`\n]*`/g, (code) => " ".repeat(code.length));
    })
    .join("\n");
  return [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)].map((match) => ({
    target: match[1]!,
    line: prose.slice(0, match.index).split("\n").length,
  }));
}

/** Names a configuration section lists: every `NAME` in its tables' first column. */
function documentedNames(section: string): string[] {
  const names = new Set<string>();
  for (const line of section.split("\n")) {
    const first = /^\|([^|]*)\|/.exec(line)?.[1];
    if (!first) continue;
    for (const match of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(match[1]!);
  }
  return [...names].sort();
}

function configurationSections(): Map<string, string> {
  const page = readPage("docs/reference/configuration.md");
  const sections = new Map<string, string>();
  for (const part of page.split(/^## /m).slice(1)) sections.set(part.slice(0, part.indexOf("\n")).trim(), part);
  return sections;
}

function sourceFiles(dir: string, keep: (name: string) => boolean = () => true): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name) && keep(entry.name))
    .map((entry) => join(entry.parentPath, entry.name));
}

const uniqueSorted = (names: Iterable<string>) => [...new Set(names)].sort();
/** Names read with a string literal first argument: r.int("PORT", …), get("NODE_ID"), .env("IRIS_URL"). */
const calledWith = (text: string) => [...text.matchAll(/\(\s*"([A-Z][A-Z0-9_]+)"/g)].map((m) => m[1]!);
const envRead = (text: string) => [...text.matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!);

describe("the documentation", () => {
  it("is a README of at most 300 lines, the front door", () => {
    expect(readPage("README.md").split("\n").length).toBeLessThanOrEqual(300);
  });

  it("links only to files and headings that exist", () => {
    const broken: string[] = [];
    for (const file of docPages()) {
      const page = readPage(file);
      for (const { target, line } of linksOf(page)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [path, anchor] = target.split("#") as [string, string | undefined];
        const resolved =
          path === "" ? join(root, file) : normalize(join(root, dirname(file), decodeURIComponent(path)));
        if (!existsSync(resolved)) {
          broken.push(`${file}:${line}: ${target} (no such file)`);
          continue;
        }
        if (anchor && resolved.endsWith(".md") && !anchorsOf(readFileSync(resolved, "utf8")).has(anchor)) {
          broken.push(`${file}:${line}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("is where the code's comments and messages send readers", () => {
    const missing: string[] = [];
    for (const dir of [
      "coordinator",
      "agent",
      "client",
      "common",
      "test",
      "bench",
      "chaos",
      "scripts",
      "migrations",
      "tui",
      "web",
    ]) {
      for (const path of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
        if (!path.isFile() || !/\.(ts|tsx|sh|sql)$/.test(path.name)) continue;
        const text = readFileSync(join(path.parentPath, path.name), "utf8");
        for (const match of text.matchAll(/\bdocs\/[\w./-]+?\.(md|png)\b/g)) {
          if (!existsSync(join(root, match[0])))
            missing.push(`${join(path.parentPath, path.name).slice(root.length)}: ${match[0]}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("has the sections the code's comments name (README and a section's title in quotes)", () => {
    const headings = new Set(
      docPages().flatMap((file) =>
        [...readPage(file).matchAll(/^#{1,6}\s+(.+?)\s*$/gm)].map((m) => m[1]!.replace(/`/g, "")),
      ),
    );
    const missing: string[] = [];
    for (const dir of [
      "coordinator",
      "agent",
      "client",
      "common",
      "test",
      "scripts",
      "migrations",
      "proto",
      "tui",
      "web",
    ]) {
      for (const path of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
        if (!path.isFile() || !/\.(ts|tsx|sh|sql|proto)$/.test(path.name)) continue;
        const text = readFileSync(join(path.parentPath, path.name), "utf8").replace(/\n\s*(\/\/|--|#)\s*/g, " ");
        for (const match of text.matchAll(/README(?:'s)?,? "([^"]+)"/g)) {
          if (!headings.has(match[1]!))
            missing.push(`${join(path.parentPath, path.name).slice(root.length)}: "${match[1]}"`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  describe("configuration reference", () => {
    const sections = configurationSections();

    it(
      "names every variable coordinator/config.ts and its sections in coordinator/config/ read, and only " + "those",
      () => {
        const text = [
          join(root, "coordinator/config.ts"),
          ...sourceFiles("coordinator/config", (name) => !name.includes(".test.")),
        ]
          .map((path) => readFileSync(path, "utf8"))
          .join("\n");
        const read = uniqueSorted(calledWith(text));
        expect(read.length).toBeGreaterThan(40);
        expect(documentedNames(sections.get("Coordinator")!)).toEqual(read);
      },
    );

    it("names every variable agent/config.ts reads, and only those", () => {
      const read = uniqueSorted(calledWith(readFileSync(join(root, "agent/config.ts"), "utf8")));
      expect(read.length).toBeGreaterThan(10);
      expect(documentedNames(sections.get("Node agent")!)).toEqual(read);
    });

    it("names every variable the iris CLI reads, and only those", () => {
      const text = sourceFiles("client", (name) => !name.includes(".test."))
        .map((path) => readFileSync(path, "utf8"))
        .join("\n");
      const read = uniqueSorted(
        [...envRead(text), ...[...text.matchAll(/\.env\("([A-Z][A-Z0-9_]+)"\)/g)].map((m) => m[1]!)].filter(
          (name) => name !== "HOME",
        ),
      );
      expect(documentedNames(sections.get("iris CLI")!)).toEqual(read);
    });

    it(
      "names the variables of tests, benchmarks and the reliability suite that exist, and every BENCH_ and CHAOS_ " +
        "one",
      () => {
        const text = ["bench", "chaos", "test"]
          .flatMap((dir) => sourceFiles(dir))
          .map((path) => readFileSync(path, "utf8"))
          .join("\n");
        const read = new Set([...text.matchAll(/process\.env\.([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!));
        const documented = documentedNames(sections.get("Tests, benchmarks and the reliability suite")!);
        expect(documented.filter((name) => !read.has(name))).toEqual([]);
        expect([...read].filter((name) => /^(BENCH|CHAOS)_/.test(name) && !documented.includes(name))).toEqual([]);
      },
    );
  });

  describe("examples", () => {
    const examples = docExamples();
    const documented = new Set(
      [...configurationSections().values()].flatMap((section) =>
        [...section.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!),
      ),
    );

    it("are there to run", () => {
      expect(examples.filter((block) => block.marker.kind === "run").length).toBeGreaterThan(30);
    });

    it.each(examples.map((block) => [describeBlock(block), block] as const))(
      "%s is marked, parses and sets only real variables",
      (_, block) => {
        expect(block.marker.kind, `unknown marker: ${JSON.stringify(block.marker)}`).not.toBe("unknown");
        if (block.marker.kind === "not-run")
          expect(block.marker.reason.length, "a block not run says why").toBeGreaterThan(10);
        if (block.language === "ts") {
          expect(() => transformSync(block.code, { loader: "ts", format: "esm" })).not.toThrow();
          return;
        }
        const parsed = spawnSync("bash", ["-n"], { input: block.code, encoding: "utf8" });
        expect(parsed.status, parsed.stderr).toBe(0);
        const unknown = assignedVariables(block.code).filter((name) => !documented.has(name));
        expect(unknown, "variables set here that docs/reference/configuration.md does not name").toEqual([]);
      },
    );

    it("include no block in a language the runner does not know, where one was meant", () => {
      const shellLike = docPages()
        .flatMap((file) => blocksOf(file))
        .filter((block) => ["shell", "console", "zsh", "typescript", "js", "javascript"].includes(block.language));
      expect(shellLike.map(describeBlock)).toEqual([]);
    });
  });

  it("keeps its images beside the pages that show them", () => {
    for (const image of ["docs/chat.png", "docs/dashboard.png"])
      expect(statSync(join(root, image)).size).toBeGreaterThan(10_000);
  });
});
