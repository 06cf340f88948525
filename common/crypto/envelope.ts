// Sealed task payloads between coordinator and node: X25519 public keys, HKDF session keys, AES-256-GCM envelopes.
// Key files live in key-file.ts, the receiving side's replay check in replay-guard.ts.
import {
  type KeyObject,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
} from "node:crypto";
import { type DescMessage, type MessageShape, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type SealedPayload, SealedPayloadSchema } from "../../gen/iris/v1/common_pb.ts";

const PUBLIC_KEY_BYTES = 32;
const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** SealedPayload.ciphertext's max_len in common.proto; sealing more would be rejected on the wire anyway. */
const MAX_CIPHERTEXT_BYTES = 8 * 1024 * 1024;
const SESSION_KEY_BYTES = 32;

/** Anything wrong with what a peer sent: a forged, tampered, replayed or malformed envelope or public key. */
export class EnvelopeError extends Error {
  override readonly name = "EnvelopeError";
}

// ---- X25519 keys ----

/** The 32 raw bytes of an X25519 public key (given it or its private key), as Register/RegisterAck carry them. */
export function publicKeyBytes(key: KeyObject): Uint8Array {
  if (key.asymmetricKeyType !== "x25519") throw new TypeError("not an X25519 key");
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  const { x } = publicKey.export({ format: "jwk" });
  return new Uint8Array(Buffer.from(x ?? "", "base64url"));
}

/** A peer's public key from its 32 raw bytes; rejects wrong lengths and low-order points. */
export function publicKeyFromBytes(bytes: Uint8Array): KeyObject {
  const key = importPublicKey(bytes);
  // A low-order point gives the all-zero secret with every private key (clamping makes the scalar a multiple of
  // the cofactor 8), so one agreement with a throwaway key finds them all, whatever their encoding.
  agree(generateKeyPairSync("x25519").privateKey, key).fill(0);
  return key;
}

function importPublicKey(bytes: Uint8Array): KeyObject {
  if (!(bytes instanceof Uint8Array) || bytes.length !== PUBLIC_KEY_BYTES) {
    throw new EnvelopeError(`X25519 public key must be ${PUBLIC_KEY_BYTES} bytes`);
  }
  try {
    const x = Buffer.from(bytes).toString("base64url");
    return createPublicKey({ key: { kty: "OKP", crv: "X25519", x }, format: "jwk" });
  } catch {
    throw new EnvelopeError("not a valid X25519 public key");
  }
}

function agree(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  let secret: Buffer;
  try {
    // OpenSSL already fails an all-zero result; the explicit check below keeps us safe if that ever changes.
    secret = diffieHellman({ privateKey, publicKey });
  } catch {
    throw new EnvelopeError("X25519 agreement failed: the public key is a low-order point");
  }
  if (secret.every((byte) => byte === 0)) throw new EnvelopeError("X25519 agreement gave the all-zero secret");
  return secret;
}

// ---- Session keys ----

export interface SessionContext {
  coordinatorPublicKey: Uint8Array;
  nodePublicKey: Uint8Array;
  nodeId: string;
  /**
   * RegisterAck.session_id. Optional, but pass it: without it the keys are the same on every connection of the
   * node, so the nonce budget (see `seal`) is spent over the node key's whole life rather than one connection's.
   */
  sessionId?: string;
}

/**
 * Two independent AES-256-GCM keys, one per direction. With a single key, anything the coordinator sealed
 * could be reflected back to it as if the node had sent it (and the other way round) and would still open;
 * with one key per direction a reflected message fails authentication.
 */
export interface SessionKeys {
  /** Coordinator → node: task assign payloads. */
  toNode: KeyObject;
  /** Node → coordinator: chunks and results. */
  toCoordinator: KeyObject;
}

/** X25519 → HKDF-SHA256 → the session's two keys; coordinator and node derive the same pair. */
export function deriveSessionKeys(myPrivate: KeyObject, theirPublic: Uint8Array, context: SessionContext): SessionKeys {
  if (myPrivate.type !== "private" || myPrivate.asymmetricKeyType !== "x25519") {
    throw new TypeError("myPrivate must be an X25519 private key");
  }
  const mine = Buffer.from(publicKeyBytes(myPrivate));
  const { coordinatorPublicKey: coordinator, nodePublicKey: node } = context;
  // Both sides must feed HKDF the same transcript; a mix-up here would otherwise show up much later as every
  // message failing to open.
  const consistent =
    (mine.equals(coordinator) && Buffer.from(theirPublic).equals(node)) ||
    (mine.equals(node) && Buffer.from(theirPublic).equals(coordinator));
  if (!consistent) throw new EnvelopeError("the context's public keys are not this key pair's and the peer's");

  const secret = agree(myPrivate, importPublicKey(theirPublic));
  try {
    // Binding both public keys into the salt ties the keys to this pair even if a peer's key were malleable.
    const salt = createHash("sha256").update(coordinator).update(node).digest();
    return {
      toNode: directionKey(secret, salt, "to-node", context),
      toCoordinator: directionKey(secret, salt, "to-coordinator", context),
    };
  } finally {
    secret.fill(0);
  }
}

function directionKey(secret: Buffer, salt: Buffer, direction: string, context: SessionContext): KeyObject {
  // A JSON array is an unambiguous encoding whatever characters the node id or session id contain.
  const info = JSON.stringify(["iris/v1", direction, context.nodeId, context.sessionId ?? ""]);
  const bytes = Buffer.from(hkdfSync("sha256", secret, salt, Buffer.from(info, "utf8"), SESSION_KEY_BYTES));
  try {
    // A KeyObject copies the bytes and prints as `SecretKeyObject { type: 'secret' }`: logging it leaks nothing.
    return createSecretKey(bytes);
  } finally {
    bytes.fill(0);
  }
}

// ---- Associated data ----

export type AadKind = "assign" | "chunk" | "result" | "classify";
const AAD_KINDS: ReadonlySet<string> = new Set<AadKind>(["assign", "chunk", "result", "classify"]);

/** What a sealed message is about; authenticated but not encrypted, so a message can't be moved to another slot. */
export interface Aad {
  taskId: string;
  sequence: number;
  kind: AadKind;
}

/**
 * `iris/v1|<kind>|<taskId>|<sequence>` in UTF-8. Injective: the kind never contains "|" and the sequence is
 * plain decimal digits, so the task id is exactly what lies between the second and the last "|".
 */
function encodeAad(aad: Aad): Uint8Array {
  if (!AAD_KINDS.has(aad.kind)) throw new TypeError(`unknown associated data kind ${JSON.stringify(aad.kind)}`);
  if (!Number.isSafeInteger(aad.sequence) || aad.sequence < 0 || aad.sequence > 0xffff_ffff) {
    throw new RangeError("associated data sequence must be a uint32");
  }
  // Lone surrogates would all encode to U+FFFD and so collide.
  if (typeof aad.taskId !== "string" || aad.taskId === "" || !aad.taskId.isWellFormed()) {
    throw new TypeError("associated data task id must be a non-empty, well-formed string");
  }
  return Buffer.from(`iris/v1|${aad.kind}|${aad.taskId}|${aad.sequence}`, "utf8");
}

// ---- AES-256-GCM ----

/** Random bytes of the given length; injected so tests can fix the nonce. */
export type Rng = (size: number) => Uint8Array;

/** Matches SealedPayload: a 12-byte nonce and the encrypted bytes followed by the 16-byte tag. */
export interface Sealed {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** Random bytes drawn a few kilobytes at a time: one CSPRNG call per ~340 nonces instead of one each (~5 µs). */
const RANDOM_POOL_BYTES = 4096;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** `size` fresh CSPRNG bytes, each handed out once (the caller copies them). */
function pooledRandomBytes(size: number): Uint8Array {
  if (randomOffset + size > randomPool.length) {
    randomPool = randomBytes(Math.max(RANDOM_POOL_BYTES, size));
    randomOffset = 0;
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + size);
  randomOffset += size;
  return bytes;
}

/**
 * AES-256-GCM with a fresh random 96-bit nonce per message. Random nonces stay safe while a key seals fewer
 * than 2^32 messages (NIST SP 800-38D: collision chance under 2^-32); one chunk per token at 1,000 tokens/s
 * would need 50 days on one connection to get there, and per-session keys (`sessionId`) restart the count.
 */
export function seal(key: KeyObject, plaintext: Uint8Array, aad: Aad, rng: Rng = pooledRandomBytes): Sealed {
  assertSessionKey(key);
  if (plaintext.length > MAX_CIPHERTEXT_BYTES - TAG_BYTES) {
    throw new RangeError(`plaintext of ${plaintext.length} bytes is over the sealed payload limit`);
  }
  const additional = encodeAad(aad);
  // Copied so a caller's rng that reuses its buffer can't change a nonce already handed out.
  const nonce = Uint8Array.from(rng(NONCE_BYTES));
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`rng returned ${nonce.length} bytes, not ${NONCE_BYTES}`);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additional);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { nonce, ciphertext };
}

/** The plaintext of a sealed message; any failure (tampered, wrong key or AAD, malformed) is an EnvelopeError. */
export function open(key: KeyObject, sealed: Sealed, aad: Aad): Uint8Array {
  const { nonce, ciphertext } = sealed ?? {};
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) {
    throw new EnvelopeError(`malformed sealed payload: the nonce must be ${NONCE_BYTES} bytes`);
  }
  const size = ciphertext instanceof Uint8Array ? ciphertext.length : -1;
  if (size < TAG_BYTES || size > MAX_CIPHERTEXT_BYTES) {
    const allowed = `${TAG_BYTES} to ${MAX_CIPHERTEXT_BYTES}`;
    throw new EnvelopeError(`malformed sealed payload: the ciphertext must be ${allowed} bytes`);
  }
  let additional: Uint8Array;
  try {
    additional = encodeAad(aad);
  } catch (error) {
    throw new EnvelopeError(`invalid associated data: ${(error as Error).message}`);
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(additional);
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
    // update() already yields bytes, but nothing is returned before final() has checked the tag.
    return Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new EnvelopeError("tampered or wrong key");
  }
}

function assertSessionKey(key: KeyObject): void {
  if (key?.type !== "secret" || key.symmetricKeySize !== SESSION_KEY_BYTES) {
    throw new TypeError("the sealing key must be a 32-byte session key from deriveSessionKeys");
  }
}

// ---- Protobuf messages and text ----

/** Seals a protobuf message (e.g. TaskPayload) into a SealedPayload ready for a oneof `sealed` case. */
export function sealMessage<Desc extends DescMessage>(
  key: KeyObject,
  schema: Desc,
  message: MessageShape<Desc>,
  aad: Aad,
  rng?: Rng,
): SealedPayload {
  return create(SealedPayloadSchema, seal(key, toBinary(schema, message), aad, rng));
}

/** Opens a sealed protobuf message. Protovalidate rules of the inner message are NOT checked here. */
export function openMessage<Desc extends DescMessage>(
  key: KeyObject,
  schema: Desc,
  sealed: Sealed,
  aad: Aad,
): MessageShape<Desc> {
  const bytes = open(key, sealed, aad);
  try {
    return fromBinary(schema, bytes);
  } catch {
    throw new EnvelopeError(`sealed payload is not a valid ${schema.typeName}`);
  }
}

/** Seals UTF-8 text (a chunk's or a result's text). */
export function sealText(key: KeyObject, text: string, aad: Aad, rng?: Rng): SealedPayload {
  return create(SealedPayloadSchema, seal(key, Buffer.from(text, "utf8"), aad, rng));
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Opens sealed UTF-8 text; invalid UTF-8 is an EnvelopeError like any other bad payload. */
export function openText(key: KeyObject, sealed: Sealed, aad: Aad): string {
  const bytes = open(key, sealed, aad);
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new EnvelopeError("sealed text is not valid UTF-8");
  }
}
