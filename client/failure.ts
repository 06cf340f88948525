// Turns any failure into the CLI's one-line message and exit code: ConnectError codes in words, usage errors as 2.
import { Code, ConnectError } from "@connectrpc/connect";
import { tlsFault } from "../common/tls-fault.ts";

/** A mistake in how the command was called (exit 2), found after commander's own checks. */
export class UsageError extends Error {}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** 128 + SIGINT, what shells report for a command stopped by Ctrl-C. */
export const EXIT_INTERRUPTED = 130;

// What each class of failure means for someone at a terminal; the coordinator's message says which thing.
const codeWords: Record<Code, string> = {
  [Code.Canceled]: "cancelled",
  [Code.Unknown]: "unexpected failure",
  [Code.InvalidArgument]: "the coordinator refused the request",
  [Code.DeadlineExceeded]: "the answer took too long",
  [Code.NotFound]: "not found",
  [Code.AlreadyExists]: "already exists",
  [Code.PermissionDenied]: "not allowed",
  [Code.ResourceExhausted]: "the network is busy or a limit was reached",
  [Code.FailedPrecondition]: "the coordinator cannot do that now",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "out of range",
  [Code.Unimplemented]: "the coordinator does not offer this",
  [Code.Internal]: "the coordinator failed",
  [Code.Unavailable]: "no node can answer right now",
  [Code.DataLoss]: "data lost",
  [Code.Unauthenticated]: "the coordinator refused the credentials",
};

const networkErrorCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
]);

/** The Node system error (ECONNREFUSED …) somewhere in the cause chain, if the call never reached the coordinator. */
function networkErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && networkErrorCodes.has(code)) return code;
  }
  return undefined;
}

export interface FailureContext {
  /** The coordinator the command talked to. */
  url: string;
  /** Whether a saved login token was sent (a refused one is worth a hint). */
  sentSavedToken: boolean;
}

/** One line, without the "iris: " prefix, that never contains a token or an account key. */
export function describeFailure(err: unknown, context: FailureContext): string {
  if (err instanceof UsageError) return err.message;
  if (!(err instanceof ConnectError)) return err instanceof Error ? err.message : String(err);
  // certificate and http/https faults: what is wrong and which setting fixes it (common/tls-fault.ts)
  const fault = tlsFault(err, { url: context.url, caSetting: "--ca or IRIS_CA_PATH" });
  if (fault) return fault.message;
  if (err.code === Code.Unavailable && networkErrorCode(err)) {
    return `cannot reach the coordinator at ${context.url}: ${err.rawMessage}`;
  }
  const words = codeWords[err.code] ?? Code[err.code] ?? "failed";
  const hint =
    err.code === Code.Unauthenticated && context.sentSavedToken
      ? " (the saved login may be stale: run `iris login` or `iris logout`)"
      : "";
  // rawMessage is the coordinator's sentence; the code's name alone when it sent none
  const detail = err.rawMessage && err.rawMessage !== words ? `: ${err.rawMessage}` : "";
  return `${words}${detail}${hint}`;
}

/** The exit code of a failed command that Ctrl-C did not interrupt (the caller knows that; 130 is for it alone). */
export function exitCodeFor(err: unknown): number {
  // a call cancelled without Ctrl-C (a stream reset, plaintext sent to a TLS port) is a failure like any other
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}
