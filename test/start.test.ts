// `npm start` as a newcomer runs it: a real process on the embedded database, health over gRPC and HTTP/1.1.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsx = join(root, "node_modules/.bin/tsx");

function startMain(env: Record<string, string>): ChildProcess {
  const clean = { ...process.env };
  delete clean.DATABASE_URL;
  return spawn(tsx, ["coordinator/main.ts"], { cwd: root, env: { ...clean, ...env }, stdio: ["ignore", "pipe", "pipe"] });
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

function grpcHealthCheck(port: number): Promise<string> {
  const definition = protoLoader.loadSync(join(root, "node_modules/grpc-health-check/proto/health/v1/health.proto"), {
    enums: String,
  });
  const proto = grpc.loadPackageDefinition(definition) as any;
  const client = new proto.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Check({ service: "" }, (err: Error | null, response: { status: string }) => {
      client.close();
      if (err) reject(err);
      else resolve(response.status);
    });
  });
}

describe("npm start", () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) child.kill("SIGKILL");
  });

  it("starts on embedded PGlite with no DATABASE_URL, answers health over gRPC and HTTP/1.1, stops on SIGTERM", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "iris-start-"));
    const child = startMain({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir });
    children.push(child);
    const port = await listeningPort(child);
    expect(await grpcHealthCheck(port)).toBe("SERVING");
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
