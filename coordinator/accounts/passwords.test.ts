// Password hashing: round trips, salts, parameters read from the stored string, no truncation, normalisation.
import { describe, expect, it } from "vitest";
import {
  DEFAULT_SCRYPT_PARAMS,
  dummyHash,
  hashPassword,
  needsRehash,
  parseStoredHash,
  verifyPassword,
} from "./passwords.ts";

// Cheap parameters where the cost is not what is being tested.
const FAST = { ln: 10, r: 8, p: 1 };

describe("hashPassword / verifyPassword", () => {
  it(
    "stores the default parameters (N=2^16, r=8, p=1), a 16-byte salt and a 32-byte key, and round " + "trips",
    async () => {
      const stored = await hashPassword("correct horse battery staple");
      expect(stored).toMatch(/^\$scrypt\$ln=16,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
      const { params, salt, hash } = parseStoredHash(stored);
      expect(params).toEqual(DEFAULT_SCRYPT_PARAMS);
      expect(salt).toHaveLength(16);
      expect(hash).toHaveLength(32);
      expect(await verifyPassword("correct horse battery staple", stored)).toBe(true);
    },
  );

  it("refuses a wrong password, including one differing only in case or by a trailing space", async () => {
    const stored = await hashPassword("correct horse battery staple", FAST);
    expect(await verifyPassword("correct horse battery stapler", stored)).toBe(false);
    expect(await verifyPassword("Correct horse battery staple", stored)).toBe(false);
    expect(await verifyPassword("correct horse battery staple ", stored)).toBe(false);
    expect(await verifyPassword("", stored)).toBe(false);
  });

  it("salts: two hashes of one password differ and both verify", async () => {
    const a = await hashPassword("same password here", FAST);
    const b = await hashPassword("same password here", FAST);
    expect(a).not.toBe(b);
    expect(parseStoredHash(a).salt.equals(parseStoredHash(b).salt)).toBe(false);
    expect(await verifyPassword("same password here", a)).toBe(true);
    expect(await verifyPassword("same password here", b)).toBe(true);
  });

  it("verifies with the parameters written in the stored string, so they can be raised later", async () => {
    const cheap = await hashPassword("parameters travel along", { ln: 11, r: 4, p: 2 });
    expect(cheap).toMatch(/^\$scrypt\$ln=11,r=4,p=2\$/);
    expect(await verifyPassword("parameters travel along", cheap)).toBe(true);
    // The same salt and key under other parameters no longer match: the parameters are really used.
    expect(await verifyPassword("parameters travel along", cheap.replace("ln=11", "ln=12"))).toBe(false);
    expect(await verifyPassword("parameters travel along", cheap.replace("r=4", "r=5"))).toBe(false);
    expect(needsRehash(cheap)).toBe(true);
    expect(needsRehash(cheap, { ln: 11, r: 4, p: 1 })).toBe(false);
  });

  it("hashes long passwords whole: 100 and 1024 characters differing only in the last one", async () => {
    for (const length of [100, 1024]) {
      const base = "p".repeat(length - 1);
      const stored = await hashPassword(`${base}a`, FAST);
      expect(await verifyPassword(`${base}a`, stored)).toBe(true);
      expect(await verifyPassword(`${base}b`, stored)).toBe(false);
      // The same salt gives a different key for the other password: nothing is cut off before hashing.
      const other = await hashPassword(`${base}b`, FAST);
      expect(parseStoredHash(other).hash.equals(parseStoredHash(stored).hash)).toBe(false);
    }
  });

  it("treats canonically equal Unicode (NFC) as one password, and other characters as different", async () => {
    const composed = "caf\u00e9 au lait!!";
    const decomposed = "cafe\u0301 au lait!!";
    const stored = await hashPassword(composed, FAST);
    expect(await verifyPassword(decomposed, stored)).toBe(true);
    expect(await verifyPassword("cafe au lait!!", stored)).toBe(false);
  });

  it("a dummy hash has the given parameters and matches nothing", async () => {
    const dummy = dummyHash(FAST);
    expect(parseStoredHash(dummy).params).toEqual(FAST);
    expect(await verifyPassword("", dummy)).toBe(false);
    expect(await verifyPassword("anything at all", dummy)).toBe(false);
    expect(dummyHash(FAST)).not.toBe(dummy);
  });

  const malformed = [
    "",
    "plaintext-password",
    "$2b$12$abcdefghijklmnopqrstuv",
    "$scrypt$ln=16,r=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
    "$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
    "$scrypt$ln=16,r=8,p=1$c2Fs$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
  ];
  for (const stored of malformed) {
    it(`refuses to verify against the malformed stored value ${JSON.stringify(stored)}`, async () => {
      await expect(verifyPassword("whatever password", stored)).rejects.toThrow(/stored password hash|scrypt ln/);
    });
  }

  it("refuses parameters that would ask for absurd memory or be too weak", async () => {
    await expect(hashPassword("whatever password", { ln: 9, r: 8, p: 1 })).rejects.toThrow(/ln must be from 10 to 18/);
    await expect(hashPassword("whatever password", { ln: 16, r: 64, p: 1 })).rejects.toThrow(/r must be from 1 to 16/);
  });
});
