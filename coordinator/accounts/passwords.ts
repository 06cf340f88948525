// Password hashing: salted scrypt (node:crypto) stored as a self-describing string, verified in constant time.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

/*
 * Stored form: `$scrypt$ln=16,r=8,p=1$<salt>$<hash>`, salt and hash in unpadded standard base64 (the PHC
 * string layout). verifyPassword reads the parameters from the string, so the cost can be raised later:
 * old hashes keep verifying with their own parameters (and can be re-hashed at the next login).
 *
 * Input: the password is NFC-normalised, then hashed whole as UTF-8. NFC makes "é" typed as one code point
 * and as "e" + combining accent the same password (keyboards and platforms differ). There is no length
 * cut-off (unlike bcrypt's 72 bytes): scrypt's PBKDF2-HMAC-SHA-256 input takes any length, and the proto
 * caps passwords at 1024 characters (at most 4 KiB of UTF-8), so every character counts.
 */

export interface ScryptParams {
  /** log2 of N, the CPU/memory cost. */
  ln: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

/**
 * N = 2^16, r = 8, p = 1: 64 MiB and ≈0.2 s per hash on this project's 2-vCPU machines. Higher than
 * 2^15 because passwords are only hashed at register and login (throttled), never per request.
 */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { ln: 16, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
const STORED = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** Hashes a password with a fresh random salt; returns the string to store in users.password_hash. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  checkParams(params);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, KEY_BYTES, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

/**
 * Whether `password` matches a string made by hashPassword, with that string's own parameters. Throws an
 * Error (not a ConnectError: it is a server-side fault) when the stored string is not one of ours.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const { params, salt, hash } = parseStoredHash(stored);
  const candidate = await derive(password, salt, hash.length, params);
  return timingSafeEqual(candidate, hash);
}

/** The parts of a stored hash; throws when it is malformed or its parameters are out of bounds. */
export function parseStoredHash(stored: string): { params: ScryptParams; salt: Buffer; hash: Buffer } {
  const match = STORED.exec(stored);
  if (!match) throw new Error("stored password hash is not in the $scrypt$ln=..,r=..,p=..$salt$hash format");
  const [, ln, r, p, salt, hash] = match as unknown as [string, string, string, string, string, string];
  const params = { ln: Number(ln), r: Number(r), p: Number(p) };
  checkParams(params);
  const parsed = { params, salt: Buffer.from(salt, "base64"), hash: Buffer.from(hash, "base64") };
  if (parsed.salt.length < 8 || parsed.hash.length < 16)
    throw new Error("stored password hash has a short salt or key");
  return parsed;
}

/**
 * A stored-hash string with `params` that no password matches (random salt and key). Verifying against it
 * costs exactly what verifying a real user's hash costs, which is what a login for an unknown email needs.
 */
export function dummyHash(params: ScryptParams = DEFAULT_SCRYPT_PARAMS): string {
  checkParams(params);
  const salt = b64(randomBytes(SALT_BYTES));
  const key = b64(randomBytes(KEY_BYTES));
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${salt}$${key}`;
}

/** Whether a stored hash was made with weaker parameters than `params` (a login may then re-hash it). */
export function needsRehash(stored: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): boolean {
  const current = parseStoredHash(stored).params;
  return current.ln < params.ln || current.r < params.r || current.p < params.p;
}

// Bounds keep a corrupted or hostile stored string from asking for gigabytes of memory.
function checkParams({ ln, r, p }: ScryptParams): void {
  if (!Number.isInteger(ln) || ln < 10 || ln > 18) throw new Error(`scrypt ln must be from 10 to 18 (got ${ln})`);
  if (!Number.isInteger(r) || r < 1 || r > 16) throw new Error(`scrypt r must be from 1 to 16 (got ${r})`);
  if (!Number.isInteger(p) || p < 1 || p > 16) throw new Error(`scrypt p must be from 1 to 16 (got ${p})`);
}

// The callback form runs on libuv's thread pool; scryptSync would stall every other request for ~0.2 s.
function derive(password: string, salt: Buffer, keyLength: number, { ln, r, p }: ScryptParams): Promise<Buffer> {
  const N = 2 ** ln;
  // scrypt needs 128·N·r bytes (64 MiB at ln=16, r=8), above Node's 32 MiB default maxmem; allow twice that.
  const options: ScryptOptions = { N, r, p, maxmem: 2 * 128 * N * r };
  return new Promise((resolve, reject) => {
    scrypt(Buffer.from(password.normalize("NFC"), "utf8"), salt, keyLength, options, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function b64(bytes: Buffer): string {
  return bytes.toString("base64").replace(/=+$/, "");
}
