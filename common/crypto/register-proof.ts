// Proof of key possession at registration: the node answers the coordinator's fresh nonce with an HMAC keyed by
// the X25519 secret they share, so a captured Register replayed by someone else cannot take over a node id.
import { type KeyObject, createHmac, diffieHellman, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { EnvelopeError, publicKeyBytes, publicKeyFromBytes } from "./envelope.ts";

const CHALLENGE_NONCE_BYTES = 32;
const REGISTER_PROOF_BYTES = 32;

export interface ProofContext {
  /** The coordinator's fresh nonce (RegisterChallenge.nonce). */
  nonce: Uint8Array;
  nodeId: string;
  nodePublicKey: Uint8Array;
  coordinatorPublicKey: Uint8Array;
}

/** A new challenge nonce: 32 random bytes, one per connection. */
export function challengeNonce(): Uint8Array {
  return new Uint8Array(randomBytes(CHALLENGE_NONCE_BYTES));
}

/** The proof for `context`, computed by either side from its own private key and the other's public key. */
export function registerProof(myPrivate: KeyObject, theirPublic: Uint8Array, context: ProofContext): Uint8Array {
  if (context.nonce.length !== CHALLENGE_NONCE_BYTES)
    throw new EnvelopeError(`challenge nonce must be ${CHALLENGE_NONCE_BYTES} bytes`);
  const mine = Buffer.from(publicKeyBytes(myPrivate));
  // the same transcript on both sides, whichever side computes it
  if (!mine.equals(context.nodePublicKey) && !mine.equals(context.coordinatorPublicKey)) {
    throw new EnvelopeError("the proof context's public keys are not this key pair's");
  }
  const secret = diffieHellman({ privateKey: myPrivate, publicKey: publicKeyFromBytes(theirPublic) });
  const key = Buffer.from(hkdfSync("sha256", secret, context.nonce, Buffer.from("iris/v1 register proof", "utf8"), 32));
  secret.fill(0);
  try {
    // both public keys are 32 bytes, so the node id (any length) followed by them is unambiguous
    const mac = createHmac("sha256", key)
      .update(Buffer.from(context.nodeId, "utf8"))
      .update(context.nodePublicKey)
      .update(context.coordinatorPublicKey)
      .digest();
    return new Uint8Array(mac);
  } finally {
    key.fill(0);
  }
}

/** Whether `proof` is the node's answer to `context` (constant-time comparison). */
export function verifyRegisterProof(coordinatorPrivate: KeyObject, proof: Uint8Array, context: ProofContext): boolean {
  if (proof.length !== REGISTER_PROOF_BYTES) return false;
  const expected = registerProof(coordinatorPrivate, context.nodePublicKey, context);
  return timingSafeEqual(expected, proof);
}
