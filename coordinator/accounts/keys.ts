// Account keys (Mullvad-style): 16 random digits from a CSPRNG, shown in groups of four, stored only as a hash.
import { hash, randomInt } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

/** Returns a uniformly random integer in [0, max); injected in tests that need fixed keys. */
export type RandomInt = (max: number) => number;

const keyPattern = /^\d{4} ?\d{4} ?\d{4} ?\d{4}$/;

/** A new key, formatted "1234 5678 9012 3456". Every digit (leading zeros too) is equally likely. */
export function generateAccountKey(random: RandomInt = randomInt): string {
  let digits = "";
  for (let i = 0; i < 16; i++) digits += String(random(10));
  return formatAccountKey(digits);
}

function formatAccountKey(digits: string): string {
  return digits.match(/\d{4}/g)!.join(" ");
}

/**
 * The key's 16 digits, or an InvalidArgument error naming `field`: 16 digits, with single spaces between
 * groups of four optional ("1234 5678 9012 3456" and "1234567890123456" are the same key).
 */
export function normalizeAccountKey(input: string, field = "account_key"): string {
  const trimmed = input.trim();
  if (!keyPattern.test(trimmed)) {
    throw new ConnectError(
      `${field} must be 16 digits, optionally in groups of four separated by spaces (e.g. 1234 5678 9012 3456)`,
      Code.InvalidArgument,
    );
  }
  return trimmed.replaceAll(" ", "");
}

/**
 * What the database stores for a key: SHA-256 of the 16 digits, lowercase hex. The key is never stored
 * or logged; only this digest is compared.
 */
export function hashAccountKey(digits: string): string {
  // one-shot: no Hash object per request (this runs for every request that carries a key)
  return hash("sha256", digits, "hex");
}
