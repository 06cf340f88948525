// Division with real agents (`iris-agent` processes running llama.cpp) on the generated tiny model with a 512-token
// window, on a network of BASIC nodes only: context mode reads documents of 1×, 5×, 20× and 100× the window with the
// default budgets, and subtasks split both forms of a numbered list into parts judged on their own, in seconds.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { getLlama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DivisionMode, Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { TINY_GGUF_WORDS } from "./fixtures/tiny-gguf.ts";
import { startAgentNetwork, type AgentNetwork } from "./support/agent-process.ts";
import { logDocument, QUESTION } from "./support/documents.ts";

type Event = ChatResponse["event"];
const WINDOW = 512;
const vocabulary = new Set(TINY_GGUF_WORDS);
const tinyWords = (text: string) =>
  text.trim() !== "" &&
  text
    .trim()
    .split(/\s+/)
    .every((word) => vocabulary.has(word));

describe("division on BASIC agents with a 512-token window", () => {
  let network: AgentNetwork;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;

  beforeAll(async () => {
    // the default budgets (CONTEXT_CHUNK_TOKENS, CONTEXT_NOTE_TOKENS, CONTEXT_OVERLAP_TOKENS, CONTEXT_MAX_CHUNKS)
    network = await startAgentNetwork({ model: { contextLength: WINDOW }, coordinatorEnv: { TASK_MAX_ATTEMPTS: "3" } });
    inference = createClient(InferenceService, createGrpcTransport({ baseUrl: network.coordinator.url }));
    await Promise.all(["tiny-1", "tiny-2", "tiny-3"].map((id) => network.agent(id)));
    for (const node of network.coordinator.registry.nodes())
      expect(node).toMatchObject({ tier: "BASIC", contextLength: WINDOW });
  }, 120_000);
  afterAll(async () => {
    await network?.close();
  });

  async function chat(content: string, divisionMode: DivisionMode, maxTokens = 8) {
    const events: Event[] = [];
    for await (const response of inference.chat({
      params: { messages: [{ role: Role.USER, content }], divisionMode, maxTokens },
    }))
      events.push(response.event);
    const accepted = events.find((e) => e.case === "accepted")!.value as Extract<Event, { case: "accepted" }>["value"];
    const last = events.at(-1)!;
    if (last.case !== "done") throw new Error(`the stream ended with ${last.case}`);
    return { accepted, text: events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join("") };
  }

  async function children(parentId: string) {
    await network.coordinator.journal.flush();
    return network.coordinator.db
      .selectFrom("tasks")
      .selectAll()
      .where("parent_id", "=", parentId)
      .orderBy("created_at")
      .execute();
  }

  it.each([1, 5, 20, 100])(
    "context: a document of %i× the window, counted by the agents' tokenizer, completes",
    async (windows) => {
      const document = logDocument(windows * WINDOW);
      const llama = await getLlama({ gpu: false });
      const model = await llama.loadModel({ modelPath: network.modelPath });
      const documentTokens = model.tokenize(document).length;
      await model.dispose();
      expect(documentTokens).toBeGreaterThanOrEqual(windows * WINDOW * 0.8);
      const started = Date.now();
      // auto: COMPLEX as a whole (a long prompt; no MID or PRO node online), a SIMPLE question about the document
      const { accepted, text } = await chat(
        `${QUESTION}\n\n${document}`,
        windows === 1 ? DivisionMode.CONTEXT : DivisionMode.AUTO,
      );
      const elapsed = Date.now() - started;
      expect(accepted.divisionMode).toBe(DivisionMode.CONTEXT);
      expect(tinyWords(text)).toBe(true);
      const parts = await children(accepted.taskId);
      // every prompt fitted its agent: a refusal (CONTEXT_TOO_LONG) or a retry would show as a second attempt
      for (const part of parts) expect(part).toMatchObject({ status: "completed", attempt: 1, difficulty: "SIMPLE" });
      console.log(
        `agents, context ${windows}× ${WINDOW}: ${documentTokens} tokens, ${parts.length} parts, ${elapsed} ms`,
      );
    },
    300_000,
  );

  it.each([
    { form: "on one line (the README's example)", request: "1. Define TCP. 2. Define UDP.", parts: 2, planner: 1 },
    // ADVANCED as a whole: no PRO node plans it; the rules split it, and each definition is SIMPLE
    { form: "on separate lines", request: "1. Define TCP.\n2. Define UDP.\n3. Define IP.", parts: 3, planner: 0 },
  ])(
    "subtasks: a numbered list $form runs as one SIMPLE part per item, within seconds",
    async ({ request, parts, planner }) => {
      const started = Date.now();
      const { accepted, text } = await chat(request, DivisionMode.SUBTASKS);
      const elapsed = Date.now() - started;
      // the old path waited 30 s for a planner and 30 s for a part (QUEUE_MAX_WAIT_MS): half of one is the bound
      expect(elapsed).toBeLessThan(15_000);
      expect(accepted.divisionMode).toBe(DivisionMode.SUBTASKS);
      for (const [i, item] of request
        .split(/\s*\d\.\s+/)
        .filter((s) => s !== "")
        .entries())
        expect(text).toContain(`${i + 1}. ${item}\n\n`);
      const rows = await children(accepted.taskId);
      // a planner row comes first when a node online could plan the whole request (how the classifier judged the whole
      // decides that); the parts are one SIMPLE row per item either way
      expect(rows.length - parts).toBeGreaterThanOrEqual(0);
      expect(rows.length - parts).toBeLessThanOrEqual(planner);
      for (const row of rows.slice(rows.length - parts))
        expect(row).toMatchObject({ status: "completed", difficulty: "SIMPLE" });
      console.log(`agents, subtasks ${JSON.stringify(request)}: ${elapsed} ms`);
    },
    30_000,
  );
});
