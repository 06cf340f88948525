// Fails when a source line is longer than 120 characters. Biome formats code to 120 columns but leaves string
// literals, comments and template text as they are: this catches those. `npm run lint` runs it after `biome ci`.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const MAX = 120;
const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.ts", "*.tsx"], {
  encoding: "utf8",
})
  .split("\n")
  .filter((file) => file !== "" && !file.startsWith("gen/"));

const long: string[] = [];
for (const file of files) {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    continue; // deleted in the working tree
  }
  for (const [index, line] of text.split("\n").entries()) {
    if ([...line].length > MAX) long.push(`${file}:${index + 1}: ${[...line].length} characters`);
  }
}
if (long.length > 0) {
  console.error(`${long.length} line(s) longer than ${MAX} characters:\n${long.join("\n")}`);
  process.exit(1);
}
console.log(`no line longer than ${MAX} characters in ${files.length} files`);
