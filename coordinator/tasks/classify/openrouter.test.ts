// The OpenRouter link against a real HTTP stand-in speaking OpenRouter's wire format: good answers, garbage,
// wrong labels, errors (429, 500, inside a 200), and a slow answer abandoned at the chain's budget.
import { afterEach, describe, expect, it } from "vitest";
import {
  startOpenRouterStandin,
  type OpenRouterStandin,
  type OpenRouterStandinBehaviour,
} from "../../../test/support/openrouter-standin.ts";
import { CLASSIFY_SYSTEM_PROMPT } from "../../../common/classify-prompt.ts";
import { createClassifierChain } from "./chain.ts";
import { createOpenRouterClassifier } from "./openrouter.ts";
import { localClassifier } from "./model.ts";

const apiKey = "sk-or-v1-0123456789abcdef-test-key";
const messages = [{ role: "user", content: "Write a Rust function that parses an INI file." }];

let standin: OpenRouterStandin | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

async function link(behaviour: Partial<OpenRouterStandinBehaviour> = {}) {
  standin = await startOpenRouterStandin(behaviour);
  return createOpenRouterClassifier({ apiKey, url: standin.url, model: "openai/gpt-4o-mini" });
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(Error);
  // whatever went wrong, the key never leaks into what gets logged
  expect((error as Error).message).not.toContain(apiKey);
  return error as Error;
}

describe("OpenRouter link", () => {
  it(
    "POSTs a JSON-mode chat completion with the key, the model and the fenced conversation, and reads the " + "answer",
    async () => {
      const classifier = await link({ content: '{"difficulty":"ADVANCED"}' });
      expect(await classifier.classify({ messages })).toEqual({ difficulty: "ADVANCED", classifier: "openrouter" });
      expect(standin!.requests).toHaveLength(1);
      const [request] = standin!.requests;
      expect(request).toMatchObject({ method: "POST", path: "/api/v1/chat/completions" });
      expect(request!.headers.authorization).toBe(`Bearer ${apiKey}`);
      expect(request!.headers["content-type"]).toBe("application/json");
      expect(request!.body).toMatchObject({
        model: "openai/gpt-4o-mini",
        temperature: 0,
        response_format: { type: "json_object" },
        stream: false,
      });
      expect(request!.body.max_tokens).toBeLessThanOrEqual(32);
      expect(request!.body.messages[0]).toEqual({ role: "system", content: CLASSIFY_SYSTEM_PROMPT });
      expect(request!.body.messages[1].role).toBe("user");
      expect(request!.body.messages[1].content).toBe(`<request>\n[user]\n${messages[0]!.content}\n</request>`);
    },
  );

  it("accepts the label in any case and with whitespace around the JSON", async () => {
    const classifier = await link({ content: '\n  {"difficulty": "simple"}  \n' });
    expect(await classifier.classify({ messages })).toEqual({ difficulty: "SIMPLE", classifier: "openrouter" });
  });

  it.each([
    ["garbage text", "I think this request is fairly complex."],
    ["a bare label", "COMPLEX"],
    ["JSON in a markdown fence", '```json\n{"difficulty":"COMPLEX"}\n```'],
    ["a wrong label", '{"difficulty":"HARD"}'],
    ["a number", '{"difficulty":2}'],
    ["an extra key", '{"difficulty":"COMPLEX","reason":"it is a comparison"}'],
    ["another key", '{"level":"COMPLEX"}'],
    ["an array", '["COMPLEX"]'],
    ["an empty answer", ""],
  ])("refuses %s", async (_name, content) => {
    const classifier = await link({ content });
    await failure(classifier.classify({ messages }));
  });

  it("refuses a 200 whose body is not JSON (a proxy's HTML page)", async () => {
    const classifier = await link({ rawBody: "<html><body>502 Bad Gateway</body></html>" });
    expect((await failure(classifier.classify({ messages }))).message).toMatch(/not JSON/);
  });

  it("refuses an error reported inside a 200 answer", async () => {
    const classifier = await link({ errorInBody: true });
    expect((await failure(classifier.classify({ messages }))).message).toMatch(
      /error in a 200 answer: Provider returned error/,
    );
  });

  it.each([429, 500])("fails at once on HTTP %i, without retrying", async (status) => {
    const classifier = await link({ status });
    const error = await failure(classifier.classify({ messages }));
    expect(error.message).toContain(`HTTP ${status}`);
    expect(standin!.requests).toHaveLength(1);
  });

  it("puts the server's error message, not the request, in the failure", async () => {
    const classifier = await link({ status: 429 });
    expect((await failure(classifier.classify({ messages }))).message).toMatch(
      /^openrouter: HTTP 429: Rate limit exceeded/,
    );
  });

  it("fails when nothing listens", async () => {
    const standinGone = await startOpenRouterStandin();
    const url = standinGone.url;
    await standinGone.close();
    const classifier = createOpenRouterClassifier({ apiKey, url, model: "m" });
    expect((await failure(classifier.classify({ messages }))).message).toMatch(/request to .* failed/);
  });
});

describe("OpenRouter link in the chain", () => {
  it(
    "is abandoned at its budget when the answer is slow: the request is aborted and the next link " + "decides",
    async () => {
      const classifier = await link({ delayMs: 2_000, content: '{"difficulty":"SIMPLE"}' });
      const chain = createClassifierChain(
        [
          { name: "openrouter", budgetMs: 150, classifier },
          { name: "local", budgetMs: 50, classifier: localClassifier },
        ],
        { cacheTtlMs: 0, cacheMaxEntries: 0 },
      );
      const started = performance.now();
      expect(await chain.classify({ messages })).toEqual({ difficulty: "ADVANCED", classifier: "local" });
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(140); // and "local" deciding shows the 2 s answer was not awaited
      await expect.poll(() => standin!.requests[0]?.disconnected).toBe(true);
      expect(chain.stats().links.openrouter).toEqual({
        answered: 0,
        failed: 0,
        timedOut: 1,
        abandoned: 0,
        declined: 0,
      });
    },
  );

  it("decides when it answers well within its budget", async () => {
    const classifier = await link({ delayMs: 20, content: '{"difficulty":"COMPLEX"}' });
    const chain = createClassifierChain(
      [
        { name: "openrouter", budgetMs: 2_000, classifier },
        { name: "local", budgetMs: 50, classifier: localClassifier },
      ],
      { cacheTtlMs: 60_000, cacheMaxEntries: 10 },
    );
    expect(await chain.classify({ messages })).toEqual({ difficulty: "COMPLEX", classifier: "openrouter" });
    expect(await chain.classify({ messages })).toEqual({
      difficulty: "COMPLEX",
      classifier: "openrouter",
      cached: true,
    });
    expect(standin!.requests).toHaveLength(1);
  });
});
