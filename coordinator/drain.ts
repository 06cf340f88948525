// Shutdown bookkeeping: user work (waited for) vs background streams (agents', ended after it), and ending streams.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** In-flight requests, split into user work and background streams by path. */
export class RequestTracker {
  #user = 0;
  #background = 0;
  readonly #changed = new Set<() => void>();

  constructor(private readonly backgroundPaths: ReadonlySet<string>) {}

  /** Counts a request until `response` closes (the end of the exchange, whichever side ends it). */
  track(url: string, response: { once(event: "close", listener: () => void): unknown }): void {
    const background = this.backgroundPaths.has(url.split("?")[0]!);
    if (background) this.#background++;
    else this.#user++;
    response.once("close", () => {
      if (background) this.#background--;
      else this.#user--;
      for (const notify of this.#changed) notify();
    });
  }

  /** User requests in flight (everything but background streams). */
  get user(): number {
    return this.#user;
  }

  /** Background streams open. */
  get background(): number {
    return this.#background;
  }

  /** Resolves true once `done()` holds, or false after `ms`. */
  until(done: (tracker: RequestTracker) => boolean, ms: number): Promise<boolean> {
    if (done(this)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (result: boolean) => {
        clearTimeout(timer);
        this.#changed.delete(check);
        resolve(result);
      };
      const check = () => {
        if (done(this)) finish(true);
      };
      const timer = setTimeout(() => finish(false), ms);
      this.#changed.add(check);
    });
  }
}

/**
 * Ends every server stream's responses with the abort reason (a ConnectError) when `signal` aborts, even when its
 * handler is waiting on something that never watches the signal (an agent's stream waits on its outbox). The
 * handler is told to return and finishes on its own when its input ends (the client goes once the stream is over).
 */
export function endStreamsOn(signal: AbortSignal): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) return res;
    // only the shutdown signal: a call's own end (client gone, deadline) stays its handler's to handle, as before
    return { ...res, message: untilAborted(res.message, signal) };
  };
}

/** `messages`, ending with the abort reason (a ConnectError) once `signal` aborts (lean gRPC lanes use it too). */
export function untilAborted<T>(messages: AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = messages[Symbol.asyncIterator]();
      let abortError: unknown;
      // the reject of the next() in flight: not a Promise.race against one long-lived promise, which would keep a
      // reaction (and every message) per call for as long as the stream lives (an agent's: hours, one per heartbeat)
      let pending: ((reason: unknown) => void) | undefined;
      const onAbort = () => {
        abortError = ConnectError.from(signal.reason ?? new ConnectError("shutting down", Code.Unavailable));
        pending?.(abortError);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      // removed when the stream ends, however it ends: one listener per live stream, none left behind
      const finish = () => signal.removeEventListener("abort", onAbort);
      return {
        async next() {
          try {
            // an agent's stream may wait hours for its next message: the abort ends the wait
            const result = await new Promise<IteratorResult<T>>((resolve, reject) => {
              it.next().then(resolve, reject);
              if (abortError !== undefined) reject(abortError);
              else pending = reject;
            });
            pending = undefined;
            if (result.done) finish();
            return result;
          } catch (err) {
            pending = undefined;
            finish();
            // the handler finishes once its input ends; not awaited, as it may be waiting on that very input
            if (signal.aborted) void it.return?.().catch(() => {});
            throw err;
          }
        },
        async throw(err?: unknown) {
          finish();
          if (it.throw) return it.throw(err);
          throw err;
        },
        async return(value?: unknown) {
          finish();
          void it.return?.().catch(() => {});
          return { done: true as const, value: value as T };
        },
      };
    },
  };
}
