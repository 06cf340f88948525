// The register proof: both sides compute the same HMAC; any other key, nonce, node id or public key fails it.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { publicKeyBytes } from "./envelope.ts";
import { challengeNonce, registerProof, verifyRegisterProof } from "./register-proof.ts";

describe("register proof", () => {
  const node = generateKeyPairSync("x25519").privateKey;
  const coordinator = generateKeyPairSync("x25519").privateKey;
  const context = {
    nonce: challengeNonce(),
    nodeId: "gpu-1",
    nodePublicKey: publicKeyBytes(node),
    coordinatorPublicKey: publicKeyBytes(coordinator),
  };
  const proof = registerProof(node, context.coordinatorPublicKey, context);

  it("verifies the node's proof on the coordinator's side", () => {
    expect(proof).toHaveLength(32);
    expect(verifyRegisterProof(coordinator, proof, context)).toBe(true);
  });

  it.each([
    ["another nonce", { nonce: challengeNonce() }],
    ["another node id", { nodeId: "gpu-2" }],
    ["another claimed node key", { nodePublicKey: publicKeyBytes(generateKeyPairSync("x25519").privateKey) }],
  ])("fails for %s", (_name, change) => {
    expect(verifyRegisterProof(coordinator, proof, { ...context, ...change })).toBe(false);
  });

  it("fails for a proof made with another private key, a flipped bit or a wrong length", () => {
    const stranger = generateKeyPairSync("x25519").privateKey;
    const forged = registerProof(stranger, context.coordinatorPublicKey, {
      ...context,
      nodePublicKey: publicKeyBytes(stranger),
    });
    expect(verifyRegisterProof(coordinator, forged, context)).toBe(false);
    const flipped = proof.slice();
    flipped[7]! ^= 1;
    expect(verifyRegisterProof(coordinator, flipped, context)).toBe(false);
    expect(verifyRegisterProof(coordinator, proof.subarray(0, 16), context)).toBe(false);
  });

  it("refuses to compute a proof for a context that is not its key pair's", () => {
    const stranger = generateKeyPairSync("x25519").privateKey;
    expect(() => registerProof(stranger, context.coordinatorPublicKey, context)).toThrow(/not this key pair's/);
  });
});
