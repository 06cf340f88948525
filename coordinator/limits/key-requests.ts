// AccountService.GenerateKey and VerifyKey calls per client address: one address can neither fill the
// accounts table nor try keys at speed.
import { Code, ConnectError } from "@connectrpc/connect";
import { addressGroup } from "../accounts/login-throttle.ts";
import type { Config } from "../config.ts";
import { humanDuration } from "./chat-limits.ts";

/*
 * A rolling window per (method, address), IPv6 by /64 as for chat and logins. Kept in this process's memory,
 * not in PostgreSQL like the chat limits: these calls are cheap and nobody is charged anything, so several
 * coordinators on one database each allow the limit (the point is a bound on what one address can do, not
 * an exact quota). A refused call is not counted, so hammering does not push the wait out.
 */

export type KeyMethod = "GenerateKey" | "VerifyKey";

const KEY_WINDOW_MS = 3_600_000;

export interface KeyRequestLimiterOptions {
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
  windowMs?: number;
  /** Addresses remembered at most; beyond it, expired ones go first, then the longest idle. */
  maxAddresses?: number;
}

export class KeyRequestLimiter {
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  /**
   * `method address` → the times of its counted calls, oldest first; re-inserted on use, so oldest entry = longest
   * idle.
   */
  readonly #calls = new Map<string, number[]>();

  constructor(
    private readonly limits: Config["keyRateLimits"],
    options: KeyRequestLimiterOptions = {},
  ) {
    this.#now = options.now ?? Date.now;
    this.#windowMs = options.windowMs ?? KEY_WINDOW_MS;
    this.#maxAddresses = options.maxAddresses ?? 100_000;
  }

  /**
   * Counts the call, or throws ResourceExhausted with the wait (`retry-after` seconds); PermissionDenied at a limit of
   * 0.
   */
  admit(method: KeyMethod, clientAddress: string): void {
    const limit = method === "GenerateKey" ? this.limits.generateKeyPerHour : this.limits.verifyKeyPerHour;
    if (limit === 0)
      throw new ConnectError(`rate limit: ${method} is switched off on this coordinator`, Code.PermissionDenied);
    const now = this.#now();
    const subject = `${method} ${clientAddress === "" ? "unknown" : addressGroup(clientAddress)}`;
    const times = (this.#calls.get(subject) ?? []).filter((at) => at > now - this.#windowMs);
    this.#calls.delete(subject);
    if (times.length >= limit) {
      this.#calls.set(subject, times);
      // room again once the oldest (count - limit + 1) calls have left the window
      const retryAtMs = times[times.length - limit]! + this.#windowMs;
      // the header rounds up (never too early), the message down ("59 min 59 s", not "1 h 0 min" a moment after)
      const seconds = Math.max(1, Math.ceil((retryAtMs - now) / 1000));
      const message =
        `rate limit: ${limit} ${method} call${limit === 1 ? "" : "s"} per ${windowName(this.#windowMs)} from one ` +
        `address; ` +
        `next allowed in ${humanDuration(Math.max(1, Math.floor((retryAtMs - now) / 1000)))}`;
      throw new ConnectError(message, Code.ResourceExhausted, { "retry-after": String(seconds) });
    }
    times.push(now);
    this.#calls.set(subject, times);
    if (this.#calls.size > this.#maxAddresses) this.#forget(now);
  }

  /** Drops expired subjects, then the longest idle ones, until the map is within its bound. */
  #forget(now: number): void {
    for (const [subject, times] of this.#calls) {
      if (times.at(-1)! <= now - this.#windowMs) this.#calls.delete(subject);
    }
    for (const subject of this.#calls.keys()) {
      if (this.#calls.size <= this.#maxAddresses) break;
      this.#calls.delete(subject);
    }
  }
}

/** "1 h" rather than humanDuration's "1 h 0 min" for the whole hours a window usually is. */
function windowName(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : humanDuration(Math.round(ms / 1000));
}
