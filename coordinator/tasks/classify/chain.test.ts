// The classifier chain: fall-through order, budgets and abort signals, the caller going away, the cache
// (hits, normalisation, expiry, LRU bound), and the per-link counters.
import { describe, expect, it } from "vitest";
import type { Difficulty } from "../../../common/vocabulary.ts";
import type { Classifier, ClassifierInput } from "./classifier.ts";
import { conversationKey } from "./cache.ts";
import {
  ClassifierBudgetExceeded,
  ClassifierLinkDeclined,
  createClassifierChain,
  type ClassifierLink,
} from "./chain.ts";
import { localClassifier } from "./model.ts";

const input = (content: string, signal?: AbortSignal): ClassifierInput => ({
  messages: [{ role: "user", content }],
  signal,
});
const hello = input("What is the capital of Peru?");

/** A link that records its calls and does what it is told: answer, throw, decline, or hang until aborted. */
function scripted(
  behaviour: "fail" | "decline" | "hang" | Difficulty | ((signal: AbortSignal) => Promise<Difficulty>),
  calls: string[],
  name: string,
): Classifier {
  return {
    async classify({ signal }) {
      calls.push(name);
      if (behaviour === "fail") throw new Error(`${name} is down`);
      if (behaviour === "decline") throw new ClassifierLinkDeclined(`${name} has nobody to ask`);
      if (behaviour === "hang") {
        return new Promise((_resolve, reject) => signal!.addEventListener("abort", () => reject(signal!.reason)));
      }
      if (typeof behaviour === "function") return { difficulty: await behaviour(signal!), classifier: name };
      return { difficulty: behaviour, classifier: name };
    },
  };
}

function chainOf(
  links: [string, Parameters<typeof scripted>[0], number?][],
  options: Partial<Parameters<typeof createClassifierChain>[1]> = {},
) {
  const calls: string[] = [];
  const chainLinks: ClassifierLink[] = links.map(([name, behaviour, budgetMs]) => ({
    name,
    budgetMs: budgetMs ?? 200,
    classifier: name === "local" ? localClassifier : scripted(behaviour, calls, name),
  }));
  const chain = createClassifierChain(chainLinks, { cacheTtlMs: 0, cacheMaxEntries: 0, ...options });
  return { chain, calls };
}

describe("fall-through", () => {
  it("the first link that answers decides; later links are not asked", async () => {
    const { chain, calls } = chainOf([
      ["openrouter", "COMPLEX"],
      ["node", "ADVANCED"],
      ["local", "SIMPLE"],
    ]);
    expect(await chain.classify(hello)).toEqual({ difficulty: "COMPLEX", classifier: "openrouter" });
    expect(calls).toEqual(["openrouter"]);
  });

  it("openrouter fails → the node decides", async () => {
    const { chain, calls } = chainOf([
      ["openrouter", "fail"],
      ["node", "ADVANCED"],
      ["local", "SIMPLE"],
    ]);
    expect(await chain.classify(hello)).toEqual({ difficulty: "ADVANCED", classifier: "node" });
    expect(calls).toEqual(["openrouter", "node"]);
  });

  it("openrouter and the node fail → the local model decides", async () => {
    const { chain, calls } = chainOf([
      ["openrouter", "fail"],
      ["node", "fail"],
      ["local", "SIMPLE"],
    ]);
    expect(await chain.classify(hello)).toEqual({ difficulty: "SIMPLE", classifier: "local" });
    expect(calls).toEqual(["openrouter", "node"]);
    expect(chain.stats().links).toEqual({
      openrouter: { answered: 0, failed: 1, timedOut: 0, abandoned: 0, declined: 0 },
      node: { answered: 0, failed: 1, timedOut: 0, abandoned: 0, declined: 0 },
      local: { answered: 1, failed: 0, timedOut: 0, abandoned: 0, declined: 0 },
    });
  });

  it("an answer that is not a difficulty counts as a failure", async () => {
    const { chain } = chainOf([
      ["openrouter", "HARD" as Difficulty],
      ["local", "SIMPLE"],
    ]);
    expect(await chain.classify(hello)).toEqual({ difficulty: "SIMPLE", classifier: "local" });
    expect(chain.stats().links.openrouter!.failed).toBe(1);
  });

  it("answers with the built-in model when every link fails, even without a local link", async () => {
    const { chain } = chainOf([
      ["openrouter", "fail"],
      ["node", "fail"],
    ]);
    expect(await chain.classify(input("Prove that 17 is prime."))).toEqual({
      difficulty: "ADVANCED",
      classifier: "local",
    });
    expect(chain.stats().fallbacks).toBe(1);
  });

  it("a link that declines passes at once, counted apart from failures", async () => {
    const { chain, calls } = chainOf([
      ["node", "decline", 5_000],
      ["local", "SIMPLE"],
    ]);
    const started = performance.now();
    expect(await chain.classify(input("Compare TCP and UDP."))).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    expect(performance.now() - started).toBeLessThan(2_500); // half the node's 5 s budget: it was not waited out
    expect(calls).toEqual(["node"]);
    expect(chain.stats().links.node).toEqual({ answered: 0, failed: 0, timedOut: 0, abandoned: 0, declined: 1 });
  });

  it("asks a link through begin when it has one: a decline there passes at once, counted as declined", async () => {
    const asked: string[] = [];
    const node: Classifier = {
      classify: () => Promise.reject(new Error("classify must not be called when begin exists")),
      begin: ({ messages }) => {
        asked.push(messages[0]!.content);
        return asked.length === 1
          ? { declined: "nobody to ask" }
          : Promise.resolve({ difficulty: "ADVANCED", classifier: "x" });
      },
    };
    const chain = createClassifierChain(
      [
        { name: "node", budgetMs: 5_000, classifier: node },
        { name: "local", budgetMs: 100, classifier: localClassifier },
      ],
      { cacheTtlMs: 0, cacheMaxEntries: 0 },
    );
    expect(await chain.classify(input("Compare TCP and UDP."))).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    expect(await chain.classify(input("Prove it."))).toEqual({ difficulty: "ADVANCED", classifier: "node" });
    expect(asked).toEqual(["Compare TCP and UDP.", "Prove it."]);
    expect(chain.stats().links.node).toEqual({ answered: 1, failed: 0, timedOut: 0, abandoned: 0, declined: 1 });
  });

  it("refuses an empty chain and duplicate names", () => {
    expect(() => createClassifierChain([], { cacheTtlMs: 0, cacheMaxEntries: 0 })).toThrow(/at least one link/);
    const twice = { name: "local", budgetMs: 10, classifier: localClassifier };
    expect(() => createClassifierChain([twice, twice], { cacheTtlMs: 0, cacheMaxEntries: 0 })).toThrow(/unique/);
  });
});

describe("budgets", () => {
  it("abandons a slow link at its budget, aborts its signal, and lets the next link decide", async () => {
    let aborted: AbortSignal | undefined;
    const slow = async (signal: AbortSignal): Promise<Difficulty> => {
      aborted = signal;
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      return "SIMPLE";
    };
    const { chain } = chainOf([
      ["openrouter", slow, 80],
      ["node", "COMPLEX", 80],
      ["local", "SIMPLE"],
    ]);
    const started = performance.now();
    expect(await chain.classify(hello)).toEqual({ difficulty: "COMPLEX", classifier: "node" });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(75); // no upper bound: "node" deciding shows the 5 s answer was not awaited
    expect(aborted?.aborted).toBe(true);
    expect(chain.stats().links.openrouter!.timedOut).toBe(1);
  });

  it("stays within the sum of the budgets when every remote link hangs", async () => {
    const { chain, calls } = chainOf([
      ["openrouter", "hang", 60],
      ["node", "hang", 90],
      ["local", "SIMPLE"],
    ]);
    const started = performance.now();
    expect(await chain.classify(input("Compare TCP and UDP."))).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    const elapsed = performance.now() - started;
    expect(calls).toEqual(["openrouter", "node"]);
    // both budgets ran out (hanging links would otherwise hold the call past the test's timeout)
    expect(elapsed).toBeGreaterThanOrEqual(145);
  });

  it("a link giving up at a tighter budget of its own counts as timed out", async () => {
    const tight = async (): Promise<Difficulty> => {
      throw new ClassifierBudgetExceeded("node n1", 30);
    };
    const { chain } = chainOf([
      ["node", tight, 2_000],
      ["local", "SIMPLE"],
    ]);
    expect((await chain.classify(hello)).classifier).toBe("local");
    expect(chain.stats().links.node).toMatchObject({ timedOut: 1, failed: 0 });
  });

  it("a link rejecting after it was abandoned is not an unhandled rejection", async () => {
    const late = async (): Promise<Difficulty> => {
      await new Promise((resolve) => setTimeout(resolve, 60));
      throw new Error("too late");
    };
    const { chain } = chainOf([
      ["openrouter", late, 20],
      ["local", "SIMPLE"],
    ]);
    expect((await chain.classify(hello)).classifier).toBe("local");
    // give the late rejection time to happen inside this test; vitest fails the run on an unhandled one
    await new Promise((resolve) => setTimeout(resolve, 80));
  });

  it(
    "when the caller goes away, the link's signal aborts at once and the local model answers without further " +
      "links",
    async () => {
      const controller = new AbortController();
      const { chain, calls } = chainOf([
        ["openrouter", "hang", 5_000],
        ["node", "COMPLEX"],
        ["local", "SIMPLE"],
      ]);
      setTimeout(() => controller.abort(), 30);
      expect(await chain.classify(input("Is a tomato a fruit?", controller.signal))).toEqual({
        difficulty: "SIMPLE",
        classifier: "local",
      });
      // at once: abandoned, not timed out at the 5 s budget
      expect(calls).toEqual(["openrouter"]);
      expect(chain.stats().links.openrouter!.abandoned).toBe(1);
    },
  );
});

describe("cache", () => {
  it("answers a repeated conversation from the cache with the deciding link's name, whitespace aside", async () => {
    const { chain, calls } = chainOf(
      [
        ["openrouter", "COMPLEX"],
        ["local", "SIMPLE"],
      ],
      { cacheTtlMs: 60_000, cacheMaxEntries: 10 },
    );
    expect(await chain.classify(input("Summarise  the plot of Hamlet."))).toEqual({
      difficulty: "COMPLEX",
      classifier: "openrouter",
    });
    expect(await chain.classify(input(" Summarise the plot\nof Hamlet. "))).toEqual({
      difficulty: "COMPLEX",
      classifier: "openrouter",
      cached: true,
    });
    expect(calls).toEqual(["openrouter"]);
    expect(chain.stats().cache).toMatchObject({ hits: 1, misses: 1, size: 1 });
  });

  it("keys on roles as well as contents", () => {
    const asUser = conversationKey([{ role: "user", content: "Hi" }]);
    expect(conversationKey([{ role: "USER ", content: "Hi" }])).toBe(asUser);
    expect(conversationKey([{ role: "system", content: "Hi" }])).not.toBe(asUser);
    expect(
      conversationKey([
        { role: "user", content: "H" },
        { role: "user", content: "i" },
      ]),
    ).not.toBe(asUser);
    expect(asUser).toMatch(/^[0-9a-f]{64}$/);
  });

  it("forgets an answer after its TTL", async () => {
    let now = 1_000_000;
    const { chain, calls } = chainOf(
      [
        ["openrouter", "COMPLEX"],
        ["local", "SIMPLE"],
      ],
      { cacheTtlMs: 5_000, cacheMaxEntries: 10, now: () => now },
    );
    await chain.classify(hello);
    now += 4_999;
    expect((await chain.classify(hello)).cached).toBe(true);
    now += 2;
    expect((await chain.classify(hello)).cached).toBeUndefined();
    expect(calls).toEqual(["openrouter", "openrouter"]);
  });

  it("keeps at most cacheMaxEntries conversations, forgetting the least recently used", async () => {
    const { chain, calls } = chainOf(
      [
        ["openrouter", "COMPLEX"],
        ["local", "SIMPLE"],
      ],
      { cacheTtlMs: 60_000, cacheMaxEntries: 2 },
    );
    const [a, b, c] = [input("a"), input("b"), input("c")];
    await chain.classify(a);
    await chain.classify(b);
    await chain.classify(a); // a is now the most recently used
    await chain.classify(c); // evicts b
    calls.length = 0;
    expect((await chain.classify(a)).cached).toBe(true);
    expect((await chain.classify(c)).cached).toBe(true);
    expect((await chain.classify(b)).cached).toBeUndefined();
    expect(calls).toEqual(["openrouter"]);
    expect(chain.stats().cache.evictions).toBeGreaterThanOrEqual(1);
  });

  it("does not cache the last link's answers: the better links get asked again once they recover", async () => {
    let down = true;
    const flaky = async (): Promise<Difficulty> => {
      if (down) throw new Error("down");
      return "ADVANCED";
    };
    const { chain } = chainOf(
      [
        ["openrouter", flaky],
        ["local", "SIMPLE"],
      ],
      { cacheTtlMs: 60_000, cacheMaxEntries: 10 },
    );
    expect(await chain.classify(hello)).toEqual({ difficulty: "SIMPLE", classifier: "local" });
    down = false;
    expect(await chain.classify(hello)).toEqual({ difficulty: "ADVANCED", classifier: "openrouter" });
  });
});

describe("logging", () => {
  it("warns once when a link starts failing and says when it answers again", async () => {
    const lines: string[] = [];
    const logger = {
      warn: (_obj: object, msg: string) => void lines.push(`warn ${msg}`),
      info: (_obj: object, msg: string) => void lines.push(`info ${msg}`),
      debug: (_obj: object, msg: string) => void lines.push(`debug ${msg}`),
    };
    let down = true;
    const flaky = async (): Promise<Difficulty> => {
      if (down) throw new Error("HTTP 401");
      return "SIMPLE";
    };
    const { chain } = chainOf(
      [
        ["openrouter", flaky],
        ["node", "decline"],
        ["local", "SIMPLE"],
      ],
      { logger: logger as never },
    );
    await chain.classify(hello);
    await chain.classify(hello);
    down = false;
    await chain.classify(hello);
    expect(lines).toEqual([
      "warn classifier link failing; falling through",
      "debug classifier link still failing",
      "info classifier link answering again",
    ]); // the node link's declining is not failing: nothing logged for it
  });
});
