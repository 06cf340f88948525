// The one chat pipeline with a stand-in orchestrator and limiter: what the orchestrator is handed, which account a
// request counts against, and that a refused key stops the request before the limiter charges anything.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Difficulty, DivisionMode, Role } from "../../gen/iris/v1/common_pb.ts";
import { ChatParamsSchema } from "../../gen/iris/v1/inference_pb.ts";
import { createTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import type { Principal } from "../accounts/principal.ts";
import { createAccount } from "../accounts/store.ts";
import type { ChatCaller, MeteredEvent } from "../limits/chat-limits.ts";
import { createChatPipeline } from "./chat-pipeline.ts";
import type { ChatEvent, ChatInput } from "./chat.ts";

describe("the chat pipeline", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.close();
  });

  /** Runs one request; returns what the orchestrator and the limiter saw. */
  async function run(init: Parameters<typeof create<typeof ChatParamsSchema>>[1], principal: Principal) {
    const seen: { input?: ChatInput; caller?: ChatCaller; metered: boolean } = { metered: false };
    const chat = createChatPipeline({
      db: database.db,
      orchestrator: {
        async *chat(input): AsyncGenerator<ChatEvent> {
          seen.input = input;
          yield { type: "token", text: "hi" };
        },
      },
      limiter: {
        admit: async (caller) => {
          seen.caller = caller;
          return undefined;
        },
        meter: <E extends MeteredEvent>(events: AsyncGenerator<E>) => {
          seen.metered = true;
          return events;
        },
      },
    });
    const events = await chat(create(ChatParamsSchema, init), {
      principal,
      clientAddress: "198.51.100.7",
      signal: new AbortController().signal,
    });
    for await (const _ of events) void _;
    return seen;
  }

  const messages = [
    { role: Role.SYSTEM, content: "Be brief." },
    { role: Role.USER, content: "hi" },
  ];

  it("hands the orchestrator the request, an admin's hint trusted, through the limiter's meter", async () => {
    const admin: Principal = { kind: "user", userId: "u1", role: "admin", accountId: null };
    const seen = await run(
      {
        messages,
        model: "llama",
        maxTokens: 8,
        temperature: 0.5,
        difficulty: Difficulty.ADVANCED,
        divisionMode: DivisionMode.CONSENSUS,
        consensusNodes: 3,
      },
      admin,
    );
    expect(seen.input).toMatchObject({
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "hi" },
      ],
      model: "llama",
      maxTokens: 8,
      temperature: 0.5,
      difficultyHint: "ADVANCED",
      trustedHint: true,
      divisionMode: "consensus",
      consensusNodes: 3,
      clientAddress: "198.51.100.7",
    });
    expect(seen.input!.accountId).toBeUndefined();
    expect(seen.caller).toEqual({ principal: admin, requestAccountId: undefined, clientAddress: "198.51.100.7" });
    expect(seen.metered).toBe(true);
    expect((await run({ messages }, { kind: "anonymous" })).input).toMatchObject({
      divisionMode: "single",
      trustedHint: false,
    });
  });

  it(
    "records the request's own key's account, else the credential's; the limiter hears only the request's " + "key",
    async () => {
      const key = await createAccount(database.db);
      const other = await createAccount(database.db);
      const principal: Principal = { kind: "account", accountId: other.id };
      const keyed = await run({ messages, accountKey: key.key }, principal);
      expect([keyed.input!.accountId, keyed.caller!.requestAccountId]).toEqual([key.id, key.id]);
      const unkeyed = await run({ messages }, principal);
      expect([unkeyed.input!.accountId, unkeyed.caller!.requestAccountId]).toEqual([other.id, undefined]);
    },
  );

  it("refuses an unknown key as Unauthenticated naming account_key, before anything is charged", async () => {
    let admitted = false;
    const chat = createChatPipeline({
      db: database.db,
      orchestrator: { chat: () => (async function* () {})() },
      limiter: { admit: async () => void (admitted = true), meter: (events) => events },
    });
    const refused = await chat(create(ChatParamsSchema, { messages, accountKey: "0000 0000 0000 0001" }), {
      principal: { kind: "anonymous" },
      clientAddress: "",
      signal: new AbortController().signal,
    }).catch((err: unknown) => ConnectError.from(err));
    expect(refused).toBeInstanceOf(ConnectError);
    expect([(refused as ConnectError).code, (refused as ConnectError).rawMessage]).toEqual([
      Code.Unauthenticated,
      "account_key: unknown or revoked account key",
    ]);
    expect(admitted).toBe(false);
  });
});
