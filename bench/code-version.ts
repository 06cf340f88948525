// Which code a benchmark measured: the commit, and whether the working tree differs from it.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The commit measured, and whether the working tree differs from it. */
export function codeVersion(): string {
  const git = (...args: string[]) =>
    execFileSync("git", args, { cwd: fileURLToPath(new URL("..", import.meta.url)), encoding: "utf8" }).trim();
  try {
    const head = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain") ? " with uncommitted changes" : "";
    return `git ${head}${dirty}`;
  } catch {
    return "not a git checkout";
  }
}
