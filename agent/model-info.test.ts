// The model file fingerprint: the same file gives the same hash; another file under the same name does not.
// (Name parsing is tested beside it in common/model-name.test.ts.)
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { modelFileFingerprint, parseModelName } from "./model-info.ts";

describe("modelFileFingerprint", () => {
  const dir = mkdtempSync(join(tmpdir(), "iris-fingerprint-"));
  const write = (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const big = (fill: number, tail: number) => {
    const bytes = Buffer.alloc(5 << 20, fill);
    bytes[bytes.length - 1] = tail;
    return bytes;
  };

  it.each([
    { what: "a small file (hashed whole)", a: Buffer.from("GGUF tiny"), b: Buffer.from("GGUF tinz") },
    { what: "a large file differing only in its last byte (tensor data)", a: big(7, 1), b: big(7, 2) },
  ])("$what: stable for the same bytes, different for others", async ({ a, b }) => {
    const first = await modelFileFingerprint(write("a.gguf", a));
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await modelFileFingerprint(write("a-copy.gguf", a))).toBe(first);
    expect(await modelFileFingerprint(write("b.gguf", b))).not.toBe(first);
  });

  it("re-exports the shared name parser for the agent's backends", () => {
    expect(parseModelName("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf")).toMatchObject({
      parameterCount: 8e9,
      quantization: "Q4_K_M",
    });
  });
});
