import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  contextNeed,
  contextTooLong,
  fitsContext,
  MESSAGE_OVERHEAD_TOKENS,
  promptTokens,
  promptTokensOn,
} from "./context-fit.ts";
import { testNode } from "../../test/support/live-nodes.ts";

const estimate = { asciiCharsPerToken: 3.5, otherCharsPerToken: 1 };
const conversation = (chars: number) => [{ content: "a".repeat(chars) }];

describe("contextNeed and promptTokens", () => {
  it("counts ASCII and other characters once, a surrogate pair as one, and the template per message", () => {
    const need = contextNeed([{ content: "hello" }, { content: "日本語😀" }], 1_000);
    expect(need).toEqual({ asciiChars: 5, otherChars: 4, messages: 2, answerTokens: 256 });
    expect(promptTokens(need, estimate)).toBe(Math.ceil(5 / 3.5 + 4) + 2 * MESSAGE_OVERHEAD_TOKENS);
  });
  it("keeps max_tokens for the answer when it is under 256", () => {
    expect(contextNeed([], 40).answerTokens).toBe(40);
  });
});

describe("fitsContext", () => {
  it.each<[string, number, number, number, boolean]>([
    // name, characters, window, max_tokens, fits
    ["a short question", 100, 4_096, 1_024, true],
    ["3,500 tokens of text and 256 for the answer in 4,096", 12_250, 4_096, 1_024, true],
    ["3,900 tokens leave too little room", 13_650, 4_096, 1_024, false],
    ["over the window", 20_000, 4_096, 1_024, false],
    ["a small max_tokens needs less room", 13_650, 4_096, 50, true],
    ["an unknown window (0) is given the benefit", 1_000_000, 0, 1_024, true],
  ])("%s", (_name, chars, window, maxTokens, fits) => {
    expect(
      fitsContext(testNode("n", "MID", { contextLength: window }), contextNeed(conversation(chars), maxTokens)),
    ).toBe(fits);
  });
  it("prices the prompt with the node's own tokenizer rates (less 10 %)", () => {
    const need = contextNeed(conversation(20_000), 1_024);
    const measured = testNode("m", "MID", {
      contextLength: 4_096,
      tokenizerRates: { asciiCharsPerToken: 6, otherCharsPerToken: 1.5 },
    });
    expect(promptTokensOn(measured, need)).toBe(Math.ceil(20_000 / 5.4) + MESSAGE_OVERHEAD_TOKENS);
    expect(fitsContext(measured, need)).toBe(true);
    expect(fitsContext(testNode("e", "MID", { contextLength: 4_096 }), need)).toBe(false);
  });
  it("counts a window lowered by a refusal", () => {
    const node = testNode("r", "MID", { contextLength: 32_768 });
    node.measured.refused(2_000);
    expect(fitsContext(node, contextNeed(conversation(14_000), 1_024))).toBe(false);
  });
});

describe("contextTooLong", () => {
  const nodes = [
    testNode("small", "MID", { contextLength: 2_048 }),
    testNode("large", "MID", { contextLength: 4_096 }),
  ];
  it("says the size, the largest window and the way out, as FailedPrecondition", () => {
    const err = contextTooLong(contextNeed(conversation(35_000), 1_024), nodes);
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe(
      "the conversation is about 10,005 tokens, more than the context of any online node that can take it (the " +
        "largest holds 4,096 tokens); start a new chat, or shorten the conversation",
    );
  });
  it("says when the prompt fits but leaves no room for an answer", () => {
    expect(contextTooLong(contextNeed(conversation(13_650), 1_024), nodes).rawMessage).toMatch(
      new RegExp(
        "^the conversation is about 3,905 tokens, which leaves no room for an answer in the largest " +
          "context .* \\(4,096 tokens\\); start a new chat",
      ),
    );
  });
  it("names the node that refused a conversation the estimate said fits", () => {
    expect(contextTooLong(contextNeed(conversation(7_000), 1_024), nodes, nodes[1]).rawMessage).toMatch(
      new RegExp(
        "^the conversation is about 2,005 tokens; node large refused it as longer than its context, " +
          "and no online node .* has a larger one \\(the largest holds 4,096 tokens\\); start a new chat",
      ),
    );
  });
});
