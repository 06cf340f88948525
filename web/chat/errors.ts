// Why an answer failed, in words a person understands (the chat page shows these instead of RPC codes).
import { Code, ConnectError } from "@connectrpc/connect";

export interface ErrorContext {
  /** Whether the message was sent with an account key (the limit and the advice differ). */
  withAccountKey: boolean;
  now?: number;
}

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
// longest spellings first, so "ms" is not read as "m" and "min" not as "m" + "in"
const durationPart = /(\d+(?:\.\d+)?)\s*(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)\b/gi;
const isoTime = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})\b/;
// "in 23 h 59 min", "after 86399 s", "retry in", "wait 5 min": the duration that says when, not "per 24 h"
const waitCue = /\b(?:in|after|wait|retry|again)\s*$/i;

function unitOf(word: string): number {
  const w = word.toLowerCase();
  if (w === "ms" || w.startsWith("milli")) return unitMs.ms!;
  return unitMs[w[0]!]!;
}

/**
 * How long until the next try is allowed, from a rate-limit error: its `retry-after` metadata (seconds) when
 * present, else an ISO timestamp in the message, else the duration after "in"/"after"/"wait" (or the last one).
 */
export function waitFromError(err: ConnectError, now = Date.now()): number | undefined {
  const retryAfter = Number(err.metadata.get("retry-after") ?? NaN);
  if (Number.isFinite(retryAfter) && retryAfter >= 0) return retryAfter * 1000;
  return waitFromMessage(err.rawMessage, now);
}

export function waitFromMessage(message: string, now = Date.now()): number | undefined {
  const at = isoTime.exec(message);
  if (at) return Math.max(0, Date.parse(at[0]) - now);
  // consecutive number+unit parts form one duration ("23 h 59 min")
  const groups: { start: number; ms: number }[] = [];
  let end = -1;
  for (const match of message.matchAll(durationPart)) {
    const ms = Number(match[1]) * unitOf(match[2]!);
    const last = groups.at(-1);
    if (last && /^(?:\s|,|and)*$/i.test(message.slice(end, match.index))) last.ms += ms;
    else groups.push({ start: match.index, ms });
    end = match.index + match[0].length;
  }
  const cued = groups.find((g) => waitCue.test(message.slice(0, g.start)));
  return (cued ?? groups.at(-1))?.ms;
}

/** "23 h 59 min", "12 min", "40 s": rounded down, since the server's clock decides. */
export function formatWait(ms: number): string {
  const totalSeconds = Math.max(1, Math.floor(ms / 1000));
  if (totalSeconds < 60) return `${totalSeconds} s`;
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  if (hours === 0) return `${minutes} min`;
  return minutes === 0 ? `${hours} h` : `${hours} h ${minutes} min`;
}

function rateLimited(err: ConnectError, context: ErrorContext): string {
  const wait = waitFromError(err, context.now);
  const when = wait === undefined ? "Try again tomorrow." : `Next message allowed in ${formatWait(wait)}.`;
  return context.withAccountKey
    ? `You've used today's messages for this account key. ${when}`
    : `You've used your free message for today. ${when} An account key (under Options) allows more.`;
}

/** Whether the failure is a conversation too long for the nodes' context windows: a New chat is the way out. */
export function tooLongForContext(error: unknown): boolean {
  const err = ConnectError.from(error);
  if (err.code === Code.FailedPrecondition) return /\bcontext\b/i.test(err.rawMessage);
  return (
    err.code === Code.ResourceExhausted &&
    /message (?:is )?(?:too large|larger)|exceeds|size/i.test(err.rawMessage) &&
    !/rate.?limit/i.test(err.rawMessage)
  );
}

/** The sentence the page shows for a failed answer. */
export function describeChatError(error: unknown, context: ErrorContext): string {
  const err = ConnectError.from(error);
  const message = err.rawMessage;
  switch (err.code) {
    case Code.ResourceExhausted:
      if (/rate.?limit|per (?:day|24 ?h)|messages? (?:a|per) day|daily/i.test(message))
        return rateLimited(err, context);
      if (/message (?:is )?(?:too large|larger)|exceeds|size/i.test(message))
        return "That conversation is too long to send. Start a new chat.";
      return "Every node that could answer is busy and the wait ran out. Please try again in a moment.";
    case Code.Unavailable: {
      // "no node that serves ADVANCED requests (tier PRO) is online; waited 30 s" names what was missing
      const missing = /serves (\w+) requests \(tier ([^)]+)\)/.exec(message);
      // a BASIC node would do: then no node at all is online
      if (missing?.[2]?.includes("BASIC"))
        return "No node can answer right now: no node is online. Please try again in a few minutes.";
      const which = missing ? ` (${missing[1]!.toLowerCase()} questions need a ${missing[2]} node)` : "";
      return (
        `No node can answer right now: none that handles this kind of question is online${which}. Please try ` +
        `again in a few minutes.`
      );
    }
    case Code.FailedPrecondition: {
      // "the conversation is about 9,000 tokens, more than the context of any online node … (the largest holds 4,096
      // tokens)"
      if (tooLongForContext(err)) {
        const tokens = /about ([\d,]+) tokens/.exec(message)?.[1];
        const largest = /holds ([\d,]+) tokens/.exec(message)?.[1] ?? /\(([\d,]+) tokens\)/.exec(message)?.[1];
        const size = tokens && largest ? ` (about ${tokens} tokens; the largest node online holds ${largest})` : "";
        return `This conversation has grown too long for the nodes online now${size}. Start a new chat to go on.`;
      }
      return `The coordinator cannot do that now: ${message}`;
    }
    case Code.DeadlineExceeded:
      return "The answer took too long and was stopped. Try a shorter question, or try again.";
    case Code.Canceled:
      return "Stopped.";
    case Code.PermissionDenied:
      if (/rate.?limit|switched off/i.test(message)) {
        return context.withAccountKey
          ? "Chat with an account key is switched off on this coordinator."
          : "Anonymous chat is switched off on this coordinator: add an account key under Options.";
      }
      return `The coordinator does not allow this: ${message}`;
    case Code.Unauthenticated:
      return context.withAccountKey
        ? "That account key is not known (or was revoked). Check it under Options, or clear it to chat anonymously."
        : "The coordinator refused the request as unauthenticated.";
    case Code.InvalidArgument:
      if (/account_key/.test(message)) return "That account key doesn't look right: it is 16 digits, spaces optional.";
      return `The coordinator could not accept this request: ${message}`;
    case Code.NotFound:
      return (
        `No connected node serves that model (${message}). Clear the model under Options to let the network ` +
        `choose.`
      );
    case Code.Unimplemented:
      return `This coordinator cannot do that yet: ${message}`;
    default:
      // fetch's own failures (offline, connection refused, reset) arrive as Unknown/Internal with a TypeError inside
      if (err.cause instanceof TypeError || /fetch|network|load failed|connection/i.test(message)) {
        return "Can't reach the Iris coordinator. Check your connection and try again.";
      }
      return `Something went wrong on the way: ${message || Code[err.code]}. Please try again.`;
  }
}
