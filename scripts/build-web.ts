// `npm run build`: bundles the /chat and /dashboard pages (web/) with esbuild into dist/web/, which the coordinator
// serves.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The pages: each has web/<name>/main.ts (which imports its CSS) and web/<name>/index.html. */
export const PAGES = ["chat", "dashboard"] as const;

export interface BuildWebOptions {
  /** Where the pages go; assets in `<outDir>/assets`. Default dist/web. */
  outDir?: string;
  minify?: boolean;
}

export interface BuiltWeb {
  outDir: string;
  /** Page name → its HTML file. */
  pages: Record<(typeof PAGES)[number], string>;
  ms: number;
}

export async function buildWeb(options: BuildWebOptions = {}): Promise<BuiltWeb> {
  const started = performance.now();
  const outDir = options.outDir ?? join(root, "dist/web");
  const assetsDir = join(outDir, "assets");
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(PAGES.map((page) => [page, `web/${page}/main.ts`])),
    bundle: true,
    // shared code (protobuf runtime, generated services, Connect) becomes one chunk both pages cache
    splitting: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox115", "safari16"],
    minify: options.minify ?? true,
    sourcemap: "linked",
    legalComments: "linked",
    outdir: assetsDir,
    // content hashes in names: the coordinator can tell browsers to cache assets forever
    entryNames: "[name]-[hash]",
    chunkNames: "shared-[hash]",
    assetNames: "[name]-[hash]",
    metafile: true,
    write: false,
    logLevel: "silent",
  });

  mkdirSync(assetsDir, { recursive: true });
  const written = new Set<string>();
  for (const file of result.outputFiles) {
    writeIfChanged(file.path, file.contents);
    written.add(basename(file.path));
    // a gzip twin for the coordinator to send when the browser accepts it (a third of the bytes, for phones);
    // mtime 0 in the header keeps equal inputs byte-equal, so unchanged files are not rewritten
    if (/\.(?:js|css)$/.test(file.path)) {
      writeIfChanged(`${file.path}.gz`, gzipSync(file.contents, { level: 9 }));
      written.add(`${basename(file.path)}.gz`);
    }
  }
  const pages = {} as BuiltWeb["pages"];
  for (const page of PAGES) {
    const entry = Object.entries(result.metafile.outputs).find(([, out]) => out.entryPoint === `web/${page}/main.ts`);
    if (!entry) throw new Error(`esbuild produced no bundle for web/${page}/main.ts`);
    const [jsPath, output] = entry;
    if (!output.cssBundle) throw new Error(`web/${page}/main.ts imports no CSS`);
    const html = readFileSync(join(root, `web/${page}/index.html`), "utf8")
      .replace(`src="/assets/${page}.js"`, `src="${assetUrl(jsPath)}"`)
      .replace(`href="/assets/${page}.css"`, `href="${assetUrl(output.cssBundle)}"`);
    if (/(?:src|href)="\/assets\/[a-z]+\.(?:js|css)"/.test(html))
      throw new Error(`web/${page}/index.html names an asset the build does not produce`);
    pages[page] = join(outDir, `${page}.html`);
    writeIfChanged(pages[page], new TextEncoder().encode(html));
  }
  // assets of earlier builds go, except those written just now (a concurrent build makes the same names)
  for (const name of readdirSync(assetsDir))
    if (!written.has(name) && !name.includes(".tmp-")) rmSync(join(assetsDir, name), { force: true });
  return { outDir, pages, ms: Math.round(performance.now() - started) };
}

/** The metafile names outputs relative to the working directory; every asset sits flat in assets/. */
function assetUrl(outputPath: string): string {
  return `/assets/${basename(outputPath)}`;
}

/**
 * Writes through a temporary file and a rename, and not at all when the bytes are the same: a coordinator
 * serving this folder (or a second build running at once, as parallel test files do) never sees half a file.
 */
function writeIfChanged(path: string, contents: Uint8Array): void {
  try {
    if (Buffer.compare(readFileSync(path), contents) === 0) return;
  } catch {
    // not there yet
  }
  const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    const built = await buildWeb();
    console.log(
      `built ${PAGES.map((p) => `/${p}`).join(" and ")} into ${relative(root, built.outDir)}/ in ${built.ms} ms`,
    );
  } catch (err) {
    // esbuild's own messages name the file and line
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number } }[] }).errors;
    for (const e of errors ?? [])
      console.error(`${e.location ? `${e.location.file}:${e.location.line}: ` : ""}${e.text}`);
    if (!errors) console.error(err);
    process.exit(1);
  }
}
