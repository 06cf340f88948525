// Key files: created private (0600 in a 0700 directory), re-loaded unchanged, refused when exposed or not X25519.
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { publicKeyBytes } from "./envelope.ts";
import { KeyFileError, loadOrCreateKeyFile } from "./key-file.ts";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "iris-key-file-"));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const mode = (path: string): number => statSync(path).mode & 0o777;

describe("loadOrCreateKeyFile", () => {
  it("creates a 0600 key on first start and loads the same key afterwards", async () => {
    const path = join(root, "node.key");
    const first = await loadOrCreateKeyFile(path);
    expect(first.created).toBe(true);
    expect(first.publicKey.length).toBe(32);
    expect(first.privateKey.asymmetricKeyType).toBe("x25519");
    expect(mode(path)).toBe(0o600);

    const again = await loadOrCreateKeyFile(path);
    expect(again.created).toBe(false);
    expect(Buffer.from(again.publicKey).equals(Buffer.from(first.publicKey))).toBe(true);
    // No temp file is left next to the key.
    expect(readdirSync(root)).toEqual(["node.key"]);
  });

  it("creates missing parent directories with mode 0700", async () => {
    const path = join(root, "a", "b", "coordinator.key");
    const created = await loadOrCreateKeyFile(path);
    expect(created.created).toBe(true);
    expect(mode(join(root, "a", "b"))).toBe(0o700);
    expect(mode(path)).toBe(0o600);
  });

  it("two concurrent first starts end with one key on disk that both report", async () => {
    const path = join(root, "race.key");
    const [a, b] = await Promise.all([loadOrCreateKeyFile(path), loadOrCreateKeyFile(path)]);
    const onDisk = await loadOrCreateKeyFile(path);
    expect(Buffer.from(a.publicKey).equals(Buffer.from(onDisk.publicKey))).toBe(true);
    expect(Buffer.from(b.publicKey).equals(Buffer.from(onDisk.publicKey))).toBe(true);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
  });

  it.each([0o644, 0o640, 0o604, 0o660])("refuses an existing key file with mode %o, naming the path", async (bad) => {
    const path = join(root, "exposed.key");
    await loadOrCreateKeyFile(path);
    chmodSync(path, bad);
    const attempt = loadOrCreateKeyFile(path);
    await expect(attempt).rejects.toThrow(KeyFileError);
    await expect(loadOrCreateKeyFile(path)).rejects.toThrow(path);
  });

  it("refuses garbage without quoting it", async () => {
    const path = join(root, "garbage.key");
    writeFileSync(path, "SECRET-LOOKING-GARBAGE\n", { mode: 0o600 });
    const error = await loadOrCreateKeyFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyFileError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).not.toContain("SECRET-LOOKING-GARBAGE");
  });

  it("refuses a key of another type without printing it", async () => {
    const path = join(root, "ed25519.key");
    const pem = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    writeFileSync(path, pem, { mode: 0o600 });
    const error = await loadOrCreateKeyFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyFileError);
    expect((error as Error).message).toMatch(/ed25519 key, not X25519/);
    expect((error as Error).message).not.toContain("PRIVATE KEY");
  });

  it("loads an X25519 PKCS#8 PEM written by someone else", async () => {
    const path = join(root, "imported.key");
    const { privateKey } = generateKeyPairSync("x25519");
    writeFileSync(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const loaded = await loadOrCreateKeyFile(path);
    expect(loaded.created).toBe(false);
    expect(Buffer.from(loaded.publicKey).equals(Buffer.from(publicKeyBytes(privateKey)))).toBe(true);
  });

  it("refuses a directory where the key file should be", async () => {
    await expect(loadOrCreateKeyFile(root)).rejects.toThrow(KeyFileError);
  });
});
