// Frozen vectors (checked against RFC 7748, RFC 5869 and pyca/cryptography), round trips, tampering, bad keys.
import { type KeyObject, createPrivateKey, diffieHellman, generateKeyPairSync, hkdfSync } from "node:crypto";
import { inspect } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Role } from "../../gen/iris/v1/common_pb.ts";
import { TaskPayloadSchema } from "../../gen/iris/v1/node_pb.ts";
import {
  type Aad,
  EnvelopeError,
  type Sealed,
  deriveSessionKeys,
  open,
  openMessage,
  openText,
  publicKeyBytes,
  publicKeyFromBytes,
  seal,
  sealMessage,
  sealText,
} from "./envelope.ts";

const hex = (bytes: Uint8Array | ArrayBuffer): string => Buffer.from(bytes as Uint8Array).toString("hex");
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
const keyHex = (key: KeyObject): string => key.export().toString("hex");
const fixedRng = (nonceHex: string) => (size: number) => bytes(nonceHex).subarray(0, size);

// X25519 private keys from 32-byte seeds: PKCS#8 DER is a fixed 16-byte prefix plus the seed.
const fromSeed = (seed: string): KeyObject => {
  const der = Buffer.from(`302e020100300506032b656e04220420${seed}`, "hex");
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
};

// RFC 7748 §6.1: Alice plays the coordinator, Bob the node.
const RFC7748 = {
  alicePrivate: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  alicePublic: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  bobPrivate: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
  bobPublic: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  shared: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
};

// Computed independently with pyca/cryptography (X25519, AESGCM) and a stdlib-hmac HKDF, then frozen.
const FROZEN = {
  toNode: "7cf2e7e96e99ab5c89c540674158cbe1cf64e0bd757cf72f91a1010b4db9a4b5",
  toCoordinator: "f8557eb490eda71b7a79fb3ba1a18ccab0712f841cfc7a6ef76288e2beed3f19",
  toNodeWithSession: "b82200bacc1cbd5e5dc80d5ff17da07f2cf66262434b6e892df0cabd9278775b",
  toCoordinatorWithSession: "0df1a133ac2f08645afd15f65fdf5d5620b935a149398c415e3eda66a42e9e15",
  // toCoordinator, nonce 000102…0b, "iris/v1|chunk|<task>|7", "Hello, Iris!"
  chunkCiphertext: "242f2c33a1de7682567204040573b3edbbb135079657c4f8cff6ed13",
  // toNode, nonce a0a1…ab, "iris/v1|assign|<task>|0", TaskPayload{messages:[{USER,"2+2?"}]}
  assignPayload: "0a0808021204322b323f",
  assignCiphertext: "4d4f6310b7e23d477f90189fb09a3813e6355282e7e98e3f56f9",
};

const TASK = "0b7e3f2a-4c1d-4e8f-9a6b-5d2c1e0f3a4b";
const SESSION = "5b0e6d1c-3a0f-4c39-9a0e-2b7f0d9c1e44";
const coordinatorKey = fromSeed(RFC7748.alicePrivate);
const nodeKey = fromSeed(RFC7748.bobPrivate);
const coordinatorPublic = publicKeyBytes(coordinatorKey);
const nodePublic = publicKeyBytes(nodeKey);
const context = { coordinatorPublicKey: coordinatorPublic, nodePublicKey: nodePublic, nodeId: "node-1" };
const coordinatorSide = deriveSessionKeys(coordinatorKey, nodePublic, context);
const nodeSide = deriveSessionKeys(nodeKey, coordinatorPublic, context);
const chunkAad: Aad = { taskId: TASK, sequence: 7, kind: "chunk" };

describe("test vectors", () => {
  it("X25519 public keys and shared secret match RFC 7748 §6.1", () => {
    expect(hex(coordinatorPublic)).toBe(RFC7748.alicePublic);
    expect(hex(nodePublic)).toBe(RFC7748.bobPublic);
    const shared = diffieHellman({ privateKey: coordinatorKey, publicKey: publicKeyFromBytes(nodePublic) });
    expect(hex(shared)).toBe(RFC7748.shared);
  });

  it("hkdfSync called as deriveSessionKeys calls it matches RFC 5869 test case 1", () => {
    const ikm = Buffer.alloc(22, 0x0b);
    const salt = bytes("000102030405060708090a0b0c");
    const info = bytes("f0f1f2f3f4f5f6f7f8f9");
    expect(hex(hkdfSync("sha256", ikm, salt, info, 42))).toBe(
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );
  });

  it("derives the frozen session keys, with and without a session id", () => {
    expect(keyHex(coordinatorSide.toNode)).toBe(FROZEN.toNode);
    expect(keyHex(coordinatorSide.toCoordinator)).toBe(FROZEN.toCoordinator);
    const withSession = deriveSessionKeys(nodeKey, coordinatorPublic, { ...context, sessionId: SESSION });
    expect(keyHex(withSession.toNode)).toBe(FROZEN.toNodeWithSession);
    expect(keyHex(withSession.toCoordinator)).toBe(FROZEN.toCoordinatorWithSession);
  });

  it("seals a chunk to the frozen ciphertext and opens it", () => {
    const rng = fixedRng("000102030405060708090a0b");
    const sealed = seal(nodeSide.toCoordinator, Buffer.from("Hello, Iris!"), chunkAad, rng);
    expect(hex(sealed.nonce)).toBe("000102030405060708090a0b");
    expect(hex(sealed.ciphertext)).toBe(FROZEN.chunkCiphertext);
    expect(openText(coordinatorSide.toCoordinator, sealed, chunkAad)).toBe("Hello, Iris!");
  });

  it("seals a TaskPayload to the frozen ciphertext and opens it", () => {
    const payload = create(TaskPayloadSchema, { messages: [{ role: Role.USER, content: "2+2?" }] });
    expect(hex(toBinary(TaskPayloadSchema, payload))).toBe(FROZEN.assignPayload);
    const aad: Aad = { taskId: TASK, sequence: 0, kind: "assign" };
    const rng = fixedRng("a0a1a2a3a4a5a6a7a8a9aaab");
    const sealed = sealMessage(coordinatorSide.toNode, TaskPayloadSchema, payload, aad, rng);
    expect(hex(sealed.ciphertext)).toBe(FROZEN.assignCiphertext);
    const opened = openMessage(nodeSide.toNode, TaskPayloadSchema, sealed, aad);
    expect(opened.messages[0]?.content).toBe("2+2?");
    expect(opened.messages[0]?.role).toBe(Role.USER);
  });
});

describe("session keys", () => {
  it("both sides derive the same pair, and the two directions differ", () => {
    expect(keyHex(nodeSide.toNode)).toBe(keyHex(coordinatorSide.toNode));
    expect(keyHex(nodeSide.toCoordinator)).toBe(keyHex(coordinatorSide.toCoordinator));
    expect(keyHex(coordinatorSide.toNode)).not.toBe(keyHex(coordinatorSide.toCoordinator));
  });

  it("another node key, node id or session id derives other keys", () => {
    const other = generateKeyPairSync("x25519").privateKey;
    const otherPublic = publicKeyBytes(other);
    const otherKeys = deriveSessionKeys(coordinatorKey, otherPublic, { ...context, nodePublicKey: otherPublic });
    const renamed = deriveSessionKeys(coordinatorKey, nodePublic, { ...context, nodeId: "node-2" });
    const session = deriveSessionKeys(coordinatorKey, nodePublic, { ...context, sessionId: "s" });
    for (const keys of [otherKeys, renamed, session]) {
      expect(keyHex(keys.toNode)).not.toBe(FROZEN.toNode);
      expect(keyHex(keys.toCoordinator)).not.toBe(FROZEN.toCoordinator);
    }
  });

  it("refuses a context whose public keys are not this pair's", () => {
    const stranger = publicKeyBytes(generateKeyPairSync("x25519").privateKey);
    const wrongNode = { ...context, nodePublicKey: stranger };
    expect(() => deriveSessionKeys(coordinatorKey, nodePublic, wrongNode)).toThrow(EnvelopeError);
    expect(() => deriveSessionKeys(coordinatorKey, stranger, context)).toThrow(EnvelopeError);
    // Swapped roles are consistent, but the salt's fixed order makes them derive other keys, never the same.
    const swapped = { ...context, coordinatorPublicKey: nodePublic, nodePublicKey: coordinatorPublic };
    expect(keyHex(deriveSessionKeys(coordinatorKey, nodePublic, swapped).toNode)).not.toBe(FROZEN.toNode);
  });

  it("session keys print and serialise without their bytes", () => {
    const printed = `${inspect(coordinatorSide)} ${JSON.stringify(coordinatorSide)}`;
    expect(printed).not.toMatch(/7c ?f2 ?e7|f8 ?55 ?7e/);
  });
});

describe("public keys", () => {
  // Low-order points of Curve25519 (u = 0, u = 1, and an order-8 point), all of which give an all-zero secret.
  const lowOrder = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  ];
  it.each(lowOrder)("rejects the low-order point %s", (point) => {
    expect(() => publicKeyFromBytes(bytes(point))).toThrow(EnvelopeError);
    const context2 = { ...context, nodePublicKey: bytes(point) };
    expect(() => deriveSessionKeys(coordinatorKey, bytes(point), context2)).toThrow(EnvelopeError);
  });

  it("rejects wrong lengths and round-trips a good key", () => {
    expect(() => publicKeyFromBytes(new Uint8Array(31))).toThrow(EnvelopeError);
    expect(() => publicKeyFromBytes(new Uint8Array(33).fill(9))).toThrow(EnvelopeError);
    expect(hex(publicKeyBytes(publicKeyFromBytes(nodePublic)))).toBe(RFC7748.bobPublic);
  });
});

describe("round trips", () => {
  it("coordinator → node and node → coordinator", () => {
    const assignAad: Aad = { taskId: TASK, sequence: 0, kind: "assign" };
    const assign = seal(coordinatorSide.toNode, bytes("c0ffee"), assignAad);
    expect(hex(open(nodeSide.toNode, assign, assignAad))).toBe("c0ffee");
    const resultAad: Aad = { taskId: TASK, sequence: 3, kind: "result" };
    const result = sealText(nodeSide.toCoordinator, "Grüße 🌍", resultAad);
    expect(openText(coordinatorSide.toCoordinator, result, resultAad)).toBe("Grüße 🌍");
    const empty = seal(nodeSide.toCoordinator, new Uint8Array(0), chunkAad);
    expect(empty.ciphertext.length).toBe(16);
    expect(open(coordinatorSide.toCoordinator, empty, chunkAad).length).toBe(0);
  });

  it("uses a different nonce for each of 10,000 seals", () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 10_000; i++) nonces.add(hex(seal(nodeSide.toCoordinator, bytes("00"), chunkAad).nonce));
    expect(nonces.size).toBe(10_000);
  });
});

describe("tampering", () => {
  const original = seal(nodeSide.toCoordinator, Buffer.from("Hello, Iris!"), chunkAad);
  const flip = (data: Uint8Array, index: number): Uint8Array => {
    const copy = Uint8Array.from(data);
    copy[index] = (copy[index] ?? 0) ^ 0x01;
    return copy;
  };
  const opens =
    (sealed: Sealed, aad: Aad = chunkAad, key: KeyObject = coordinatorSide.toCoordinator) =>
    () =>
      open(key, sealed, aad);
  const lastByte = original.ciphertext.length - 1;

  it("opens when untouched", () => {
    expect(Buffer.from(opens(original)()).toString()).toBe("Hello, Iris!");
  });

  it.each<[string, () => Uint8Array]>([
    // The plaintext is 12 bytes, so byte 0 is encrypted text and the last byte is in the tag.
    ["ciphertext", opens({ ...original, ciphertext: flip(original.ciphertext, 0) })],
    ["tag", opens({ ...original, ciphertext: flip(original.ciphertext, lastByte) })],
    ["nonce", opens({ ...original, nonce: flip(original.nonce, 11) })],
    ["AAD task id", opens(original, { ...chunkAad, taskId: "0b7e3f2a-4c1d-4e8f-9a6b-5d2c1e0f3a4c" })],
    ["AAD sequence", opens(original, { ...chunkAad, sequence: 8 })],
    ["AAD kind", opens(original, { ...chunkAad, kind: "result" })],
    ["key: the toNode key", opens(original, chunkAad, coordinatorSide.toNode)],
    ["key: the node's own toNode key (reflection)", opens(original, chunkAad, nodeSide.toNode)],
  ])("a changed %s fails with EnvelopeError", (_label, attempt) => {
    expect(attempt).toThrow(EnvelopeError);
    expect(attempt).toThrow("tampered or wrong key");
  });

  it.each<[string, Sealed]>([
    ["an 11-byte nonce", { nonce: new Uint8Array(11), ciphertext: original.ciphertext }],
    ["a 16-byte nonce", { nonce: new Uint8Array(16), ciphertext: original.ciphertext }],
    ["a ciphertext shorter than the tag", { nonce: original.nonce, ciphertext: new Uint8Array(15) }],
    ["missing fields", {} as Sealed],
    ["no payload at all", undefined as unknown as Sealed],
  ])("%s is an EnvelopeError, not a crash", (_label, sealed) => {
    expect(opens(sealed)).toThrow(EnvelopeError);
  });

  it("invalid AAD, a non-key and undecodable contents are EnvelopeErrors", () => {
    expect(opens(original, { ...chunkAad, sequence: -1 })).toThrow(EnvelopeError);
    expect(opens(original, { ...chunkAad, kind: "bogus" as Aad["kind"] })).toThrow(EnvelopeError);
    expect(() => open(undefined as unknown as KeyObject, original, chunkAad)).toThrow(EnvelopeError);
    const garbage = seal(nodeSide.toCoordinator, bytes("ffffffff"), chunkAad);
    expect(() => openText(coordinatorSide.toCoordinator, garbage, chunkAad)).toThrow(EnvelopeError);
    const asPayload = () => openMessage(coordinatorSide.toCoordinator, TaskPayloadSchema, garbage, chunkAad);
    expect(asPayload).toThrow(EnvelopeError);
  });

  it("seal refuses a non-session key, a bad AAD and a short nonce from the rng", () => {
    expect(() => seal(coordinatorKey, bytes("00"), chunkAad)).toThrow(TypeError);
    expect(() => seal(nodeSide.toCoordinator, bytes("00"), { ...chunkAad, sequence: 2 ** 32 })).toThrow(RangeError);
    expect(() => seal(nodeSide.toCoordinator, bytes("00"), { ...chunkAad, taskId: "" })).toThrow(TypeError);
    expect(() => seal(nodeSide.toCoordinator, bytes("00"), chunkAad, () => new Uint8Array(8))).toThrow(RangeError);
  });
});
