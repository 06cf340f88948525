// `npm start` as a newcomer runs it: a real process on the embedded database, health over gRPC and HTTP/1.1.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { grpcHealthCheck, grpcReflect } from "./support/grpc-js.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsx = join(root, "node_modules/.bin/tsx");

function startMain(env: Record<string, string>): ChildProcess {
  const clean = { ...process.env };
  delete clean.DATABASE_URL;
  return spawn(tsx, ["coordinator/main.ts"], {
    cwd: root,
    env: { ...clean, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Resolves with the port once the coordinator logs that it listens. */
function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const event = JSON.parse(line) as { msg?: string; port?: number };
      if (event.msg?.startsWith("coordinator listening")) resolve(event.port!);
    });
    child.once("exit", (code) => reject(new Error(`coordinator exited with ${code} before listening`)));
  });
}

describe("npm start", () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) child.kill("SIGKILL");
  });

  it("starts on embedded PGlite with no DATABASE_URL, answers health and reflection over gRPC and HTTP/1.1, stops on " +
    "SIGTERM", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "iris-start-"));
    const child = startMain({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir });
    children.push(child);
    const port = await listeningPort(child);
    expect(await grpcHealthCheck(`127.0.0.1:${port}`)).toBe("SERVING");
    const listed = await grpcReflect(`127.0.0.1:${port}`, "v1", { list_services: "" });
    const names: string[] = listed.list_services_response.service.map((s: { name: string }) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "iris.v1.NodeService",
        "iris.v1.InferenceService",
        "iris.v1.AccountService",
        "iris.v1.NetworkService",
      ]),
    );
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(await response.json()).toEqual({ status: "SERVING", database: "pglite" });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 60_000);

  it("refuses to start on a wrong value, naming the variable", async () => {
    const child = startMain({ PORT: "eighty" });
    children.push(child);
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('PORT must be a whole number from 0 to 65535 (got "eighty")');
  }, 30_000);
});
