// Both HTTP bodies read into ChatParams and refused by ChatParams' own rules, naming the body's field.
import { describe, expect, it } from "vitest";
import { Difficulty, DivisionMode, Role } from "../../gen/iris/v1/common_pb.ts";
import { chatParamsFromJson } from "./chat-params-from-json.ts";
import { parseChatStreamBody } from "./chat-sse-request.ts";
import { InvalidFieldError } from "./invalid-field-error.ts";
import { parseCompletionRequest } from "./openai-request.ts";

const messages = [{ role: "user", content: "hi" }];

function refusal(read: () => unknown): InvalidFieldError {
  try {
    read();
  } catch (err) {
    if (err instanceof InvalidFieldError) return err;
    throw err;
  }
  throw new Error("the body was accepted");
}

describe("chat params from JSON", () => {
  it("maps names to ChatParams' enums and leaves unset fields at their defaults", () => {
    const params = chatParamsFromJson(
      {
        model: "llama",
        max_tokens: 32,
        temperature: 0,
        difficulty: "Complex",
        division_mode: "consensus",
        consensus_nodes: 3,
      },
      { messages: [{ role: Role.USER, content: "hi" }] },
    );
    expect(params).toMatchObject({
      model: "llama",
      maxTokens: 32,
      temperature: 0,
      difficulty: Difficulty.COMPLEX,
      divisionMode: DivisionMode.CONSENSUS,
      consensusNodes: 3,
    });
    const bare = chatParamsFromJson(
      { model: null, temperature: null },
      { messages: [{ role: Role.USER, content: "hi" }] },
    );
    expect(bare).toMatchObject({
      model: "",
      maxTokens: 0,
      difficulty: Difficulty.UNSPECIFIED,
      divisionMode: DivisionMode.UNSPECIFIED,
      consensusNodes: 0,
    });
    expect(bare.temperature).toBeUndefined();
  });

  // [field, body, words in the message]: the same rules on both routes, in protovalidate's words where they are its
  const refusals: [string, Record<string, unknown>, RegExp][] = [
    ["messages", { messages: [] }, /^messages: must contain at least 1 item/],
    ["messages", { messages: Array.from({ length: 1025 }, () => messages[0]) }, /no more than 1024/],
    [
      "messages[0].content",
      { messages: [{ role: "user", content: "x".repeat(1_048_577) }] },
      /^messages\[0\]\.content: must be at most 1048576 characters/,
    ],
    ["model", { messages, model: "m".repeat(257) }, /^model: must be at most 256 characters/],
    ["max_tokens", { messages, max_tokens: 131_073 }, /^max_tokens: must be less than or equal to 131072/],
    ["max_tokens", { messages, max_tokens: 2 ** 40 }, /131072/],
    ["max_tokens", { messages, max_tokens: 0 }, /positive integer/],
    ["max_tokens", { messages, max_tokens: 1.5 }, /positive integer/],
    [
      "temperature",
      { messages, temperature: 2.5 },
      /^temperature: must be greater than or equal to 0 and less than or equal to 2/,
    ],
    ["temperature", { messages, temperature: "warm" }, /from 0 to 2/],
    ["difficulty", { messages, difficulty: "constructor" }, /simple, complex, advanced/],
    ["division_mode", { messages, division_mode: "majority" }, /single, subtasks, consensus, context, auto/],
    ["consensus_nodes", { messages, division_mode: "consensus", consensus_nodes: 10 }, /from 2 to 9/],
    ["consensus_nodes", { messages, division_mode: "consensus", consensus_nodes: 1 }, /from 2 to 9/],
    ["consensus_nodes", { messages, consensus_nodes: 3 }, /only with division_mode consensus/],
  ];

  it.each(refusals)("refuses a bad %s on both routes, naming it", (field, body, words) => {
    for (const read of [() => parseChatStreamBody(body), () => parseCompletionRequest(body)]) {
      const error = refusal(read);
      expect(error.field).toBe(field);
      expect(error.message.replaceAll("'", "")).toMatch(words);
    }
  });

  it("names OpenAI's max_completion_tokens when the body used it", () => {
    const error = refusal(() => parseCompletionRequest({ messages, max_completion_tokens: 200_000, max_tokens: 10 }));
    expect([error.field, error.message]).toEqual([
      "max_completion_tokens",
      "max_completion_tokens: must be less than or equal to 131072 [uint32.lte]",
    ]);
    expect(parseCompletionRequest({ messages, max_completion_tokens: 20, max_tokens: 10 }).params.maxTokens).toBe(20);
  });

  it("checks the SSE body's account key by ChatParams' pattern, spaces around it trimmed", () => {
    expect(parseChatStreamBody({ messages, account_key: " 1234 5678 9012 3456 " }).accountKey).toBe(
      "1234 5678 9012 3456",
    );
    expect(refusal(() => parseChatStreamBody({ messages, account_key: "1234-5678" })).message).toMatch(
      /^account_key: does not match regex pattern/,
    );
    expect(refusal(() => parseChatStreamBody({ messages, account_key: " " })).field).toBe("account_key");
  });
});
