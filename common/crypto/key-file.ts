// The long-lived X25519 key files (COORDINATOR_PRIVATE_KEY_PATH, NODE_KEY_PATH): loaded, or created on first start.
import { type KeyObject, createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { type FileHandle, link, mkdir, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { publicKeyBytes } from "./envelope.ts";

/** A key file that is exposed, unreadable or holds no X25519 key; the message names the path, never the contents. */
export class KeyFileError extends Error {
  override readonly name = "KeyFileError";
}

export interface KeyFile {
  privateKey: KeyObject;
  /** The 32 raw public key bytes, as Register.public_key / RegisterAck.coordinator_public_key carry them. */
  publicKey: Uint8Array;
  /** True when this call generated the key (first start). */
  created: boolean;
}

/**
 * Reads the PKCS#8 PEM X25519 private key at `path`, or creates one (parent directory 0700, file 0600) when
 * there is none. Refuses a file that group or others can access, as OpenSSH does: a key others could read
 * may already be someone else's.
 */
export async function loadOrCreateKeyFile(path: string): Promise<KeyFile> {
  const existing = await readKeyFile(path);
  if (existing) return { privateKey: existing, publicKey: publicKeyBytes(existing), created: false };
  return createKeyFile(path);
}

async function readKeyFile(path: string): Promise<KeyObject | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw new KeyFileError(`cannot open key file ${path} (${errorCode(error) ?? "unknown error"})`);
  }
  try {
    // Checked on the open handle, so the file we judge is the file we read.
    const stat = await handle.stat();
    if (!stat.isFile()) throw new KeyFileError(`key file ${path} is not a regular file`);
    // Windows has no such mode bits (Node reports 0o666 for every file); its ACLs are the operator's business.
    if (process.platform !== "win32" && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
      throw new KeyFileError(`key file ${path} is accessible by group or others (mode ${mode}); run chmod 600 on it`);
    }
    return parsePrivateKey(await handle.readFile("utf8"), path);
  } finally {
    await handle.close();
  }
}

function parsePrivateKey(pem: string, path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch {
    // The parser's own message is dropped on purpose: it may quote what it could not parse.
    throw new KeyFileError(`key file ${path} does not hold a PEM private key`);
  }
  if (key.asymmetricKeyType !== "x25519") {
    throw new KeyFileError(`key file ${path} holds a ${key.asymmetricKeyType ?? "non-asymmetric"} key, not X25519`);
  }
  return key;
}

async function createKeyFile(path: string): Promise<KeyFile> {
  const directory = dirname(path);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync("x25519");
  const pem = privateKey.export({ type: "pkcs8", format: "pem" });

  // Written whole to a temp file first, so a crash never leaves a half-written key under the real name.
  const temp = join(directory, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temp, "wx", 0o600);
  try {
    try {
      await handle.chmod(0o600); // the umask may have taken bits off the 0600 asked for above
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (!(await publish(temp, path))) {
      // Another process created the key between our read and now: its key is the one on disk, so use it.
      const winner = await readKeyFile(path);
      if (!winner) throw new KeyFileError(`key file ${path} vanished while it was being created`);
      return { privateKey: winner, publicKey: publicKeyBytes(winner), created: false };
    }
  } finally {
    await unlink(temp).catch(() => undefined); // already gone after a rename
  }
  return { privateKey, publicKey: publicKeyBytes(privateKey), created: true };
}

/**
 * Puts the temp file under its real name atomically; false when a file already has that name. link() is
 * atomic and never replaces an existing file, unlike rename(); rename() is the fallback for file systems
 * without hard links.
 */
async function publish(temp: string, path: string): Promise<boolean> {
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    await rename(temp, path);
    return true;
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
