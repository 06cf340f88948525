// Who may speak for a node id: the account and public key that first registered it. A registration is checked
// against that binding, then proves it holds the key (the register challenge); MoveNode rebinds the key.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { KeyObject } from "node:crypto";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { EnvelopeError, publicKeyFromBytes } from "../../common/crypto/envelope.ts";
import { challengeNonce, verifyRegisterProof } from "../../common/crypto/register-proof.ts";
import {
  ConnectResponseSchema,
  MoveNodeResponseSchema,
  type ConnectRequest,
  type ConnectResponse,
  type MoveNodeRequest,
  type MoveNodeResponse,
} from "../../gen/iris/v1/node_pb.ts";
import { normalizeAccountKey } from "../accounts/keys.ts";
import { findAccountId } from "../accounts/store.ts";
import type { Database } from "../db/schema.ts";
import { validateNodeMessage } from "../validation.ts";
import type { NodeRegistry } from "./registry.ts";
import { nodeBinding, rebindNode, type NodeBinding } from "./store.ts";

/** The account id behind an account key, or Unauthenticated. */
export async function accountOf(db: Kysely<Database>, accountKey: string): Promise<string> {
  const accountId = await findAccountId(db, normalizeAccountKey(accountKey));
  if (!accountId) throw new ConnectError("unknown or revoked account key (IRIS_ACCOUNT_KEY)", Code.Unauthenticated);
  return accountId;
}

/** Why a registration may not use `nodeId` (its binding belongs to someone else), or undefined when it may. */
function bindingRefusal(
  nodeId: string,
  binding: NodeBinding | undefined,
  accountId: string,
  publicKey: Uint8Array,
): string | undefined {
  if (!binding) return undefined;
  if (binding.accountId !== accountId) {
    return `node_id: node "${nodeId}" is registered to another account; choose another NODE_ID`;
  }
  if (binding.publicKey && !binding.publicKey.equals(publicKey)) {
    const key = Buffer.from(publicKey).toString("base64");
    return (
      `public_key: node "${nodeId}" is bound to another key; if it moved to this machine, its owner runs ` +
      `\`iris node move ${nodeId} --public-key ${key}\` with the node's account key, or copies the old NODE_KEY_PATH ` +
      `file here`
    );
  }
  return undefined;
}

/** Refuses (PermissionDenied) a registration whose node id is bound to another account or another key. */
export async function checkBinding(
  db: Kysely<Database>,
  nodeId: string,
  accountId: string,
  publicKey: Uint8Array,
): Promise<void> {
  const refusal = bindingRefusal(nodeId, await nodeBinding(db, nodeId), accountId, publicKey);
  if (refusal) throw new ConnectError(refusal, Code.PermissionDenied);
}

export interface Challenge {
  message: ConnectResponse;
  /** Throws PermissionDenied unless `answer` is a valid proof for this challenge. */
  verify(answer: ConnectRequest): void;
}

/** A fresh register challenge for a node that registered `nodeId` with `nodePublicKey`. */
export function registerChallenge(
  coordinatorKey: { privateKey: KeyObject; publicKey: Uint8Array },
  nodeId: string,
  nodePublicKey: Uint8Array,
): Challenge {
  const nonce = challengeNonce();
  const context = { nonce, nodeId, nodePublicKey, coordinatorPublicKey: coordinatorKey.publicKey };
  return {
    message: create(ConnectResponseSchema, {
      message: { case: "registerChallenge", value: { nonce, coordinatorPublicKey: coordinatorKey.publicKey } },
    }),
    verify(answer) {
      validateNodeMessage(answer);
      if (answer.message.case !== "registerProof") {
        throw new ConnectError(
          "the second message must be a register_proof answering the register challenge",
          Code.InvalidArgument,
        );
      }
      let valid: boolean;
      try {
        valid = verifyRegisterProof(coordinatorKey.privateKey, answer.message.value.proof, context);
      } catch (err) {
        if (err instanceof EnvelopeError) throw new ConnectError(`public_key: ${err.message}`, Code.InvalidArgument);
        throw err;
      }
      if (!valid) {
        throw new ConnectError(
          "register_proof: the node does not hold the private key of the public_key it registered",
          Code.PermissionDenied,
        );
      }
    },
  };
}

/** The next message, or DeadlineExceeded after `ms` (a stream that stops talking cannot hold a slot). */
export async function nextWithin<T>(iterator: AsyncIterator<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConnectError(`no ${what} within ${ms} ms`, Code.DeadlineExceeded)), ms);
  });
  try {
    const next = await Promise.race([iterator.next(), timeout]);
    if (next.done) throw new ConnectError(`the stream ended before a ${what}`, Code.InvalidArgument);
    return next.value;
  } finally {
    clearTimeout(timer);
  }
}

export interface MoveNodeDeps {
  db: Kysely<Database>;
  registry: NodeRegistry;
  logger: Logger;
}

/** MoveNode: the owner (by account key) binds the node id to a new key and ends a connection with the old one. */
export async function moveNode(deps: MoveNodeDeps, request: MoveNodeRequest): Promise<MoveNodeResponse> {
  const accountId = await accountOf(deps.db, request.accountKey);
  try {
    publicKeyFromBytes(request.publicKey);
  } catch (err) {
    if (err instanceof EnvelopeError) throw new ConnectError(`public_key: ${err.message}`, Code.InvalidArgument);
    throw err;
  }
  const binding = await nodeBinding(deps.db, request.nodeId);
  if (!binding) throw new ConnectError(`node_id: no node "${request.nodeId}" is registered`, Code.NotFound);
  if (binding.accountId !== accountId) {
    throw new ConnectError(`node_id: node "${request.nodeId}" is registered to another account`, Code.PermissionDenied);
  }
  const unchanged = binding.publicKey?.equals(request.publicKey) ?? false;
  if (!(await rebindNode(deps.db, request.nodeId, accountId, request.publicKey))) {
    throw new ConnectError(`node_id: node "${request.nodeId}" is registered to another account`, Code.PermissionDenied);
  }
  const live = deps.registry.get(request.nodeId);
  const disconnect = !unchanged && live !== undefined;
  if (disconnect)
    live.endConnection(
      new ConnectError(`node "${request.nodeId}" was moved to another key by its owner`, Code.PermissionDenied),
    );
  deps.logger.info({ nodeId: request.nodeId, disconnected: disconnect }, "node moved to a new public key");
  return create(MoveNodeResponseSchema, { disconnected: disconnect });
}
