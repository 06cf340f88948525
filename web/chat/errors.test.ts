// The chat page's error wording: rate-limit waits read from the coordinator's message, and each code in words.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { describeChatError, formatWait, tooLongForContext, waitFromMessage } from "./errors.ts";

const now = Date.parse("2026-11-20T12:00:00Z");
const anonymous = { withAccountKey: false, now };

describe("waitFromMessage", () => {
  it.each([
    [
      "rate limit: 1 message per 24 h for anonymous callers; next message allowed in 23 h 59 min",
      (23 * 60 + 59) * 60_000,
    ],
    ["rate limit reached; retry after 86399 s", 86_399_000],
    ["rate limit reached; retry in 86399 seconds", 86_399_000],
    ["rate limit: try again in 2 hours and 5 minutes", (2 * 60 + 5) * 60_000],
    ["rate limit: wait 1500 ms", 1500],
    ["rate limit: 3 messages per 24 h; resets at 2026-11-21T11:59:00Z", (23 * 60 + 59) * 60_000],
    ["rate limit: 1 message per 24 h", 24 * 3_600_000],
  ])("%s", (message, expected) => {
    expect(waitFromMessage(message, now)).toBe(expected);
  });

  it("finds no wait in a message without one", () => {
    expect(waitFromMessage("rate limit reached", now)).toBeUndefined();
  });
});

describe("formatWait", () => {
  it.each([
    [86_399_000, "23 h 59 min"],
    [86_400_000, "24 h"],
    [5 * 60_000 + 30_000, "5 min"],
    [42_000, "42 s"],
    [10, "1 s"],
  ])("%d ms → %s", (ms, text) => {
    expect(formatWait(ms)).toBe(text);
  });
});

describe("describeChatError", () => {
  it("tells an anonymous user when the next message is allowed, from the message or from retry-after", () => {
    const fromMessage = new ConnectError("rate limit: next message allowed in 86399 s", Code.ResourceExhausted);
    expect(describeChatError(fromMessage, anonymous)).toMatch(
      /^You've used your free message for today\. Next message allowed in 23 h 59 min\./,
    );
    const fromHeader = new ConnectError("rate limit reached", Code.ResourceExhausted, { "retry-after": "600" });
    expect(describeChatError(fromHeader, anonymous)).toContain("Next message allowed in 10 min.");
    expect(describeChatError(fromHeader, { withAccountKey: true, now })).toMatch(
      /^You've used today's messages for this account key/,
    );
  });

  it("reads the coordinator's own refusal (retry-after and the sentence agree)", () => {
    const refusal = new ConnectError(
      "rate limit: 1 message per 24 h for anonymous use; next message allowed in 23 h 59 min (at 2026-11-21T11:59:00Z)",
      Code.ResourceExhausted,
      { "retry-after": "86340" },
    );
    expect(describeChatError(refusal, anonymous)).toMatch(
      /^You've used your free message for today\. Next message allowed in 23 h 59 min\./,
    );
    const off = new ConnectError(
      "rate limit: chat for anonymous use is switched off on this coordinator",
      Code.PermissionDenied,
    );
    expect(describeChatError(off, anonymous)).toMatch(/Anonymous chat is switched off/);
  });

  it("tells a busy network from a rate limit, and an empty network from both", () => {
    const busy = new ConnectError(
      "every node that serves SIMPLE requests is busy; waited 30 s",
      Code.ResourceExhausted,
    );
    expect(describeChatError(busy, anonymous)).toMatch(/busy/);
    expect(describeChatError(busy, anonymous)).not.toMatch(/free message/);
    const none = new ConnectError(
      "no node that serves SIMPLE requests (tier BASIC or MID or PRO) is online; waited 30 s",
      Code.Unavailable,
    );
    expect(describeChatError(none, anonymous)).toBe(
      "No node can answer right now: no node is online. Please try again in a few minutes.",
    );
    const noPro = new ConnectError(
      "no node that serves ADVANCED requests (tier PRO) is online; online now: 2 BASIC nodes",
      Code.Unavailable,
    );
    expect(describeChatError(noPro, anonymous)).toBe(
      "No node can answer right now: none that handles this kind of question is online (advanced questions need a " +
        "PRO node). Please try again in a few minutes.",
    );
  });

  it("says a conversation has outgrown the nodes' context in words, and offers a new chat for it only", () => {
    const tooLong = new ConnectError(
      "the conversation is about 9,120 tokens, more than the context of any online node that can take it (the " +
        "largest holds 4,096 tokens); start a new chat, or shorten the conversation",
      Code.FailedPrecondition,
    );
    expect(describeChatError(tooLong, anonymous)).toBe(
      "This conversation has grown too long for the nodes online now (about 9,120 tokens; the largest node online " +
        "holds 4,096). Start a new chat to go on.",
    );
    expect(tooLongForContext(tooLong)).toBe(true);
    const noRoom = new ConnectError(
      "the conversation is about 3,905 tokens, which leaves no room for an answer in the largest context of the " +
        "online nodes that can take it (4,096 tokens); start a new chat, or shorten the conversation",
      Code.FailedPrecondition,
    );
    expect(describeChatError(noRoom, anonymous)).toContain("(about 3,905 tokens; the largest node online holds 4,096)");
    expect(describeChatError(new ConnectError("node is not registered", Code.FailedPrecondition), anonymous)).toBe(
      "The coordinator cannot do that now: node is not registered",
    );
    expect(
      tooLongForContext(
        new ConnectError("no node that serves SIMPLE requests (tier BASIC or MID or PRO) is online", Code.Unavailable),
      ),
    ).toBe(false);
    expect(tooLongForContext(new ConnectError("rate limit: 1 message per 24 h", Code.ResourceExhausted))).toBe(false);
  });

  it("words deadlines, bad keys, unknown models and network failures", () => {
    expect(describeChatError(new ConnectError("deadline", Code.DeadlineExceeded), anonymous)).toMatch(/took too long/);
    expect(
      describeChatError(new ConnectError("account_key: unknown or revoked account key", Code.Unauthenticated), {
        withAccountKey: true,
        now,
      }),
    ).toMatch(/account key is not known/);
    expect(
      describeChatError(new ConnectError("invalid account_key: does not match regex", Code.InvalidArgument), anonymous),
    ).toMatch(/16 digits/);
    expect(describeChatError(new ConnectError("no connected node serves model x", Code.NotFound), anonymous)).toMatch(
      /No connected node serves that model/,
    );
    expect(describeChatError(new TypeError("Failed to fetch"), anonymous)).toBe(
      "Can't reach the Iris coordinator. Check your connection and try again.",
    );
  });
});
