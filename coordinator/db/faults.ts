// Tells a database that is unreachable or went away from any other database error, and maps it to Connect's
// Unavailable.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * SQLSTATEs and socket codes that say "the database is not there right now": connection exceptions (class 08,
 * including 08007 transaction_resolution_unknown), admin/crash shutdown, a server still starting, too many
 * connections, and the errors of a socket that cannot connect or was cut.
 */
const UNAVAILABLE_CODES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

// pg reports a lost or unusable connection with a plain Error and no code; these are its messages. ("Connection
// terminated" without "unexpectedly" is our own close, so it is not among them.)
const UNAVAILABLE_MESSAGES = [
  "Connection terminated unexpectedly",
  "Connection terminated due to connection timeout",
  "timeout exceeded when trying to connect",
  "is not queryable",
];

/** True when `err` (or its cause, or one of an AggregateError's errors) says the database cannot be reached now. */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (typeof err !== "object" || err === null || depth > 4) return false;
  const { code, message, cause, errors } = err as {
    code?: unknown;
    message?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (typeof code === "string" && (UNAVAILABLE_CODES.has(code) || code.startsWith("08"))) return true;
  if (typeof message === "string" && UNAVAILABLE_MESSAGES.some((m) => message.includes(m))) return true;
  if (Array.isArray(errors) && errors.some((e) => isDatabaseUnavailable(e, depth + 1))) return true;
  return isDatabaseUnavailable(cause, depth + 1);
}

/** The Unavailable error a client sees; the reason is the error's code or pg's message, never a query or a URL. */
export function databaseUnavailable(err: unknown): ConnectError {
  const { code, message } = err as { code?: unknown; message?: unknown };
  const reason = typeof code === "string" ? code : typeof message === "string" ? message : "connection lost";
  return new ConnectError(`database unavailable: ${reason}`, Code.Unavailable, undefined, undefined, err);
}

/** Thrown when a transaction's COMMIT may or may not have happened and the database cannot say yet. */
export class CommitUnknownError extends Error {
  readonly code = "08007"; // transaction_resolution_unknown: a connection error, so callers wait and ask again
  constructor(xid: string, cause?: unknown) {
    super(
      cause === undefined
        ? `transaction ${xid} is still in progress on a connection that was lost`
        : `whether transaction ${xid} committed could not be asked: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
    this.name = "CommitUnknownError";
  }
}

/**
 * `err` as a client should see it: a database fault becomes Unavailable (503 on HTTP routes), anything else is
 * unchanged.
 */
export function unavailableIfDatabase(err: unknown): unknown {
  return !(err instanceof ConnectError) && isDatabaseUnavailable(err) ? databaseUnavailable(err) : err;
}

/**
 * The one place where a handler's database fault becomes Unavailable (retryable by clients) instead of Internal.
 * It goes first, so the auth interceptor's own lookups are covered. A stream's messages pass through a thin
 * iterator (one extra promise each, no async generator step), so the token path stays cheap.
 */
export function createDatabaseFaultInterceptor(): Interceptor {
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw unavailableIfDatabase(err);
    }
    if (!res.stream) return res;
    const source = res.message;
    const rethrow = (err: unknown): never => {
      throw unavailableIfDatabase(err);
    };
    const message: AsyncIterable<unknown> = {
      [Symbol.asyncIterator]() {
        const it = source[Symbol.asyncIterator]();
        return {
          next: () => it.next().catch(rethrow),
          return: (value?: unknown) =>
            it.return ? it.return(value).catch(rethrow) : Promise.resolve({ done: true as const, value }),
        };
      },
    };
    return { ...res, message } as typeof res;
  };
}
