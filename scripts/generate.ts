// `npm run generate`: prepares the imported .proto files that npm packages ship, then runs `buf generate` into gen/.
// With --deps-only it only prepares .buf-deps/ (committed, so that a bare `buf lint` works on a fresh clone; CI
// fails when it differs from what this prepares, as for gen/).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { protoSource } from "./proto-source.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const deps = join(root, ".buf-deps"); // rebuilt from node_modules on every run
const require = createRequire(import.meta.url);

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

function place(relativePath: string, write: (target: string) => void): void {
  const target = join(deps, relativePath);
  mkdirSync(dirname(target), { recursive: true });
  write(target);
}

rmSync(deps, { recursive: true, force: true });
// protovalidate ships validate.proto only as a compiled descriptor: print it back to source for buf.
place("buf/validate/validate.proto", (t) => writeFileSync(t, protoSource(file_buf_validate_validate.proto)));
// gRPC reflection and health ship their .proto files inside npm packages.
const reflection = join(packageDir("@grpc/reflection"), "build/proto/grpc/reflection");
for (const version of ["v1", "v1alpha"]) {
  place(`grpc/reflection/${version}/reflection.proto`, (t) =>
    copyFileSync(join(reflection, version, "reflection.proto"), t),
  );
}
place("grpc/health/v1/health.proto", (t) =>
  copyFileSync(join(packageDir("grpc-health-check"), "proto/health/v1/health.proto"), t),
);

if (process.argv.includes("--deps-only")) process.exit(0);

rmSync(join(root, "gen"), { recursive: true, force: true });
execFileSync(join(root, "node_modules/.bin/buf"), ["generate"], { cwd: root, stdio: "inherit" });
console.log("generated gen/ from proto/ (+ grpc reflection and health)");
