// Division modes over real sockets with scripted nodes: consensus with a dishonest node, subtasks streamed in
// order, a long document mapped and reduced, auto's choice, parts retried on another node, and parent failure.
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { DivisionMode } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import type { TaskAssign, TaskPayload } from "../gen/iris/v1/node_pb.ts";
import { estimateTokens } from "../coordinator/tasks/division/chunking.ts";
import { answerHash } from "../coordinator/tasks/division/compare.ts";
import { connectFailure } from "./support/errors.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import {
  alter,
  startScriptedNode,
  TaskErrorReason,
  type Script,
  type ScriptedNode,
  type ScriptedNodeOptions,
} from "./support/scripted-node.ts";

type Event = ChatResponse["event"];

/** The last user turn of an assignment. */
const lastUser = (payload: TaskPayload) => payload.messages.findLast((m) => m.role === 2)?.content ?? "";
const system = (payload: TaskPayload) => payload.messages.find((m) => m.role === 1)?.content ?? "";
const words = (text: string) => text.split(/(?= )/);

/**
 * A model stand-in that reads its prompt: it plans (a JSON array of the numbered lines), takes notes on a
 * document part ("note-<i>"), answers from notes (listing them), and otherwise answers "Answer to <request>".
 */
function reader(options: { plan?: (request: string) => string; delayMs?: (request: string) => number } = {}) {
  return (_: unknown, payload: TaskPayload): Script => {
    const request = lastUser(payload);
    const delayMs = options.delayMs?.(request) ?? 0;
    if (system(payload).includes("split a user's request")) {
      const plan =
        options.plan?.(request) ??
        JSON.stringify(
          request
            .split("\n")
            .filter((line) => /^\d+\./.test(line))
            .map((line) => line.replace(/^\d+\.\s*/, "")),
        );
      return { tokens: [plan] };
    }
    const part = /Part (\d+) of (\d+) of the document/.exec(request);
    if (part) return { tokens: [`note-${part[1]}`], delayMs };
    if (request.startsWith("A long document was read in parts")) {
      const notes = [...request.matchAll(/\[Part \d+ of \d+\]\n(\S*)/g)].map((m) => m[1]);
      return { tokens: words(`Summary from ${notes.join(" ")}`), delayMs };
    }
    return { tokens: words(`Answer to ${request}`), delayMs };
  };
}

describe("division modes", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  let nodes: ScriptedNode[] = [];

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "200",
      QUEUE_MAX_WAIT_MS: "3000",
      TASK_MAX_ATTEMPTS: "3",
      CONTEXT_OVERLAP_TOKENS: "32",
    });
    const transport = createGrpcTransport({ baseUrl: coordinator.url });
    accountKey = (await createClient(AccountService, transport).generateKey({})).accountKey;
    inference = createClient(InferenceService, transport);
  });
  afterEach(async () => {
    for (const node of nodes) node.kill();
    await Promise.all(nodes.map((node) => node.ended));
    await expect
      .poll(() => coordinator.registry.size === 0 || [...coordinator.registry.nodes()].every((n) => !n.connected))
      .toBe(true);
    nodes = [];
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  async function node(options: Partial<ScriptedNodeOptions> & { nodeId: string }): Promise<ScriptedNode> {
    const started = startScriptedNode({ baseUrl: coordinator.url, accountKey, script: reader(), ...options });
    nodes.push(started);
    await started.registered;
    return started;
  }

  async function chat(
    prompt: string,
    params: { divisionMode: DivisionMode; consensusNodes?: number; maxTokens?: number },
  ) {
    const events: { at: number; event: Event }[] = [];
    for await (const response of inference.chat({ params: { messages: [{ role: 2, content: prompt }], ...params } })) {
      events.push({ at: Date.now(), event: response.event });
    }
    return events;
  }

  const textOf = (events: { event: Event }[]) =>
    events.flatMap(({ event }) => (event.case === "token" ? [event.value.text] : [])).join("");
  const accepted = (events: { event: Event }[]) =>
    events.find(({ event }) => event.case === "accepted")!.event.value as Extract<Event, { case: "accepted" }>["value"];
  const done = (events: { event: Event }[]) => {
    const last = events.at(-1)!.event;
    if (last.case !== "done") throw new Error(`the stream ended with ${last.case}`);
    return last.value;
  };

  async function rows(parentId: string) {
    await coordinator.journal.flush();
    const parent = await coordinator.db
      .selectFrom("tasks")
      .selectAll()
      .where("id", "=", parentId)
      .executeTakeFirstOrThrow();
    const children = await coordinator.db
      .selectFrom("tasks")
      .selectAll()
      .where("parent_id", "=", parentId)
      .orderBy("created_at")
      .execute();
    return { parent, children };
  }

  async function reputation(nodeId: string) {
    await coordinator.reputation.settled();
    const events = await coordinator.db
      .selectFrom("reputation_events")
      .select(["rule", "delta", "task_id", "evidence"])
      .where("node_id", "=", nodeId)
      .orderBy("id")
      .execute();
    const { reputation } = await coordinator.db
      .selectFrom("nodes")
      .select("reputation")
      .where("id", "=", nodeId)
      .executeTakeFirstOrThrow();
    return { events, reputation };
  }

  describe("consensus", () => {
    const question = "What is the boiling point of water at sea level?";
    const honest = "Answer to What is the boiling point of water at sea level?";

    it(
      "returns the majority answer, verified; the dishonest node loses 50 and the others earn the " + "completion",
      async () => {
        const liars = [await node({ nodeId: "c-liar", dishonest: true, tokensPerSecond: 29 })];
        const good = [await node({ nodeId: "c-good-1" }), await node({ nodeId: "c-good-2" })];
        const events = await chat(question, { divisionMode: DivisionMode.CONSENSUS });
        expect(events[0]!.event.case).toBe("accepted");
        expect(accepted(events).divisionMode).toBe(DivisionMode.CONSENSUS);
        expect(textOf(events)).toBe(honest);
        const end = done(events);
        expect(end.verified).toBe(true);
        // the two honest copies are a majority of three: done may come before the liar's copy ends
        expect(end.nodeIds).toEqual(expect.arrayContaining(["c-good-1", "c-good-2"]));
        expect(["c-good-1", "c-good-2"]).toContain(end.nodeId);
        await expect.poll(async () => (await reputation("c-liar")).events.length).toBe(1);
        // deterministic sampling: temperature 0 and one seed for every copy
        const payloads = [...liars, ...good].map((n) => n.payloads[0]!);
        expect(payloads.map((p) => p.temperature)).toEqual([0, 0, 0]);
        expect(new Set(payloads.map((p) => p.seed)).size).toBe(1);
        expect(payloads[0]!.seed).toBeDefined();

        const liar = await reputation("c-liar");
        expect(liar.reputation).toBe(50);
        expect(liar.events.map((e) => [e.rule, e.delta])).toEqual([["invalid_response", -50]]);
        expect(liar.events[0]!.evidence).toMatchObject({
          check: "consensus",
          answerSha256: answerHash(alter(honest)),
          referenceSha256: answerHash(honest),
          threshold: 0.9,
        });
        for (const id of ["c-good-1", "c-good-2"]) {
          const score = await reputation(id);
          expect(score.events.map((e) => [e.rule, e.delta])).toEqual([["task_completed", 10]]);
        }
        const { parent, children } = await rows(accepted(events).taskId);
        // the parent names no node: its parts carry the work (payouts and statistics count each once)
        expect(parent).toMatchObject({
          status: "completed",
          division_mode: "consensus",
          parent_id: null,
          node_id: null,
          tier: null,
        });
        expect(children).toHaveLength(3);
        for (const child of children)
          expect(child).toMatchObject({ status: "completed", division_mode: "consensus", parent_id: parent.id });
        expect(new Set(children.map((c) => c.node_id)).size).toBe(3);
        expect(liar.events[0]!.task_id).toBe(children.find((c) => c.node_id === "c-liar")!.id);
        const { mismatches } = await coordinator.db
          .selectFrom("nodes")
          .select("mismatches")
          .where("id", "=", "c-liar")
          .executeTakeFirstOrThrow();
        expect(mismatches).toBe(1);
      },
    );

    it("answers as soon as a majority agrees; a slow dishonest copy is judged when it ends", async () => {
      const slowLiar = await node({
        nodeId: "slow-liar",
        dishonest: true,
        script: (_, payload) => ({ ...reader()(_, payload), delayMs: 150 }),
      });
      await node({ nodeId: "quick-1" });
      await node({ nodeId: "quick-2" });
      const events = await chat(question, { divisionMode: DivisionMode.CONSENSUS });
      const finished = events.at(-1)!.at;
      expect(textOf(events)).toBe(honest);
      expect(done(events)).toMatchObject({ verified: true });
      expect([...done(events).nodeIds].sort()).toEqual(["quick-1", "quick-2"]);
      // the liar's copy (12 words, 150 ms apart) was still running when the user had the answer
      expect(slowLiar.cancels).toEqual([]);
      await expect
        .poll(async () => (await reputation("slow-liar")).events.map((e) => [e.rule, e.delta]), { timeout: 5_000 })
        .toEqual([["invalid_response", -50]]);
      const [penalty] = (await reputation("slow-liar")).events;
      expect(penalty!.evidence).toMatchObject({
        check: "consensus",
        referenceSha256: answerHash(honest),
        answerSha256: answerHash(alter(honest)),
      });
      const { children } = await rows(accepted(events).taskId);
      const liarRow = children.find((c) => c.node_id === "slow-liar")!;
      expect(liarRow.status).toBe("completed");
      expect(liarRow.completed_at!.getTime()).toBeGreaterThan(finished);
    });

    it("marks the answer unverified and penalises no one when there is no majority", async () => {
      for (const [id, answer] of [
        ["n-1", "Paris"],
        ["n-2", "Lyon"],
        ["n-3", "Nice"],
      ] as const)
        await node({ nodeId: id, script: () => ({ tokens: [answer] }) });
      const events = await chat(question, { divisionMode: DivisionMode.CONSENSUS });
      expect(done(events).verified).toBe(false);
      expect(["Paris", "Lyon", "Nice"]).toContain(textOf(events));
      for (const id of ["n-1", "n-2", "n-3"])
        expect((await reputation(id)).events.map((e) => e.rule)).toEqual(["task_completed"]);
    });

    it(
      "never compares different models: too few nodes of one model → one node answers, unverified, no " + "penalty",
      async () => {
        await node({ nodeId: "m-a-1", modelName: "model-a-8B", script: () => ({ tokens: ["one"] }) });
        await node({ nodeId: "m-a-2", modelName: "model-a-8B", script: () => ({ tokens: ["one"] }) });
        const other = await node({ nodeId: "m-b-1", modelName: "model-b-8B", dishonest: true });
        const events = await chat(question, { divisionMode: DivisionMode.CONSENSUS, consensusNodes: 3 });
        expect(done(events).verified).toBe(false);
        expect(textOf(events)).toBe("one");
        expect(other.assigns).toHaveLength(0);
        for (const id of ["m-a-1", "m-a-2", "m-b-1"])
          expect((await reputation(id)).events.filter((e) => e.rule === "invalid_response")).toEqual([]);
        // with two of model a asked for, they agree
        const two = await chat(question, { divisionMode: DivisionMode.CONSENSUS, consensusNodes: 2 });
        expect(done(two).verified).toBe(true);
        expect([...done(two).nodeIds].sort()).toEqual(["m-a-1", "m-a-2"]);
      },
    );
  });

  describe("subtasks", () => {
    const request = "Answer each:\n1. What is DNS?\n2. What is TCP?\n3. What is TLS?";
    const expected =
      "1. What is DNS?\n\nAnswer to Answer each:\n\nWhat is DNS?" +
      "\n\n2. What is TCP?\n\nAnswer to Answer each:\n\nWhat is TCP?" +
      "\n\n3. What is TLS?\n\nAnswer to Answer each:\n\nWhat is TLS?";
    // the first part is the slowest and the last the fastest: the stream must still be in plan order
    const delays = (prompt: string) => (prompt.includes("DNS") ? 60 : prompt.includes("TCP") ? 20 : 1);
    const plan = (prompt: string) =>
      JSON.stringify(
        prompt
          .split("\n")
          .slice(1)
          .map((line) => `Answer each:\n\n${line.slice(3)}`),
      );
    // the local classifier rates a numbered list of questions ADVANCED: PRO nodes (over 20B parameters) serve it
    const pro = { parameterCount: 70e9 };

    it("plans on a node, runs the parts on three nodes in parallel, and streams one answer in order", async () => {
      const three = await Promise.all(
        [1, 2, 3].map((i) => node({ nodeId: `s-${i}`, ...pro, script: reader({ plan, delayMs: delays }) })),
      );
      const events = await chat(request, { divisionMode: DivisionMode.SUBTASKS });
      expect(events[0]!.event.case).toBe("accepted");
      expect(accepted(events).divisionMode).toBe(DivisionMode.SUBTASKS);
      expect(textOf(events)).toBe(expected);
      // the first part streamed live: its tokens came one by one, over the time it took
      const tokens = events.filter(({ event }) => event.case === "token");
      const firstPart = tokens.slice(
        0,
        tokens.findIndex(({ event }) => event.case === "token" && event.value.text.includes("2. What is TCP")),
      );
      expect(firstPart.length).toBeGreaterThan(4);
      expect(firstPart.at(-1)!.at - firstPart[1]!.at).toBeGreaterThan(150);
      const { parent, children } = await rows(accepted(events).taskId);
      expect(parent).toMatchObject({ status: "completed", division_mode: "subtasks" });
      expect(children).toHaveLength(4); // the planner and three parts
      for (const child of children)
        expect(child).toMatchObject({ status: "completed", division_mode: "subtasks", parent_id: parent.id });
      const planner = three
        .flatMap((n) => n.assigns.filter((_, i) => system(n.payloads[i]!) !== ""))
        .map((a) => a.taskId);
      expect(planner).toHaveLength(1);
      expect(new Set(children.filter((c) => c.id !== planner[0]).map((c) => c.node_id)).size).toBe(3);
      expect(done(events).nodeIds).toHaveLength(3);
    });

    it("falls back to the rules when the planner's answer is no plan", async () => {
      for (const i of [1, 2])
        await node({ nodeId: `r-${i}`, ...pro, script: reader({ plan: () => "I would rather not." }) });
      const events = await chat(request, { divisionMode: DivisionMode.SUBTASKS });
      expect(textOf(events)).toBe(expected);
      const { parent } = await rows(accepted(events).taskId);
      const notes = await coordinator.db
        .selectFrom("task_events")
        .select("detail")
        .where("task_id", "=", parent.id)
        .execute();
      expect(notes.map((n) => n.detail)).toContain("plan (rules): 3 part(s)");
    });

    it("retries a part whose node dies on another node; the stream stays whole and ordered", async () => {
      let dying: string | undefined;
      const scriptOf =
        (id: string) =>
        (assign: TaskAssign, payload: TaskPayload): Script => {
          const answer = reader({ plan, delayMs: delays })(assign, payload);
          // the first node that gets the TCP part dies before answering it
          if (!system(payload) && lastUser(payload).includes("TCP") && dying === undefined) {
            dying = id;
            return { ...answer, dieAfter: 0 };
          }
          return answer;
        };
      await Promise.all([1, 2, 3, 4].map((i) => node({ nodeId: `d-${i}`, ...pro, script: scriptOf(`d-${i}`) })));
      const events = await chat(request, { divisionMode: DivisionMode.SUBTASKS });
      expect(textOf(events)).toBe(expected);
      expect(dying).toBeDefined();
      const { children } = await rows(accepted(events).taskId);
      const tcp = children.find((c) => c.attempt === 2)!;
      expect(tcp.status).toBe("completed");
      expect(tcp.node_id).not.toBe(dying);
      const history = await coordinator.db
        .selectFrom("task_events")
        .select(["status", "detail", "node_id"])
        .where("task_id", "=", tcp.id)
        .orderBy("id")
        .execute();
      expect(history.find((h) => h.detail?.startsWith("re-routed"))?.node_id).toBe(dying);
      expect(history.filter((h) => h.status === "assigned").map((h) => h.node_id)).toEqual([dying, tcp.node_id]);
    });

    it("fails the parent, with the reason, when a part cannot be completed anywhere", async () => {
      const script = (assign: TaskAssign, payload: TaskPayload): Script =>
        lastUser(payload).includes("TLS") && !system(payload)
          ? { tokens: [], failWith: TaskErrorReason.BACKEND_FAILED }
          : reader({ plan })(assign, payload);
      for (const i of [1, 2, 3]) await node({ nodeId: `f-${i}`, ...pro, script });
      let taskId = "";
      const err = await connectFailure(
        (async () => {
          for await (const response of inference.chat({
            params: { messages: [{ role: 2, content: request }], divisionMode: DivisionMode.SUBTASKS },
          })) {
            if (response.event.case === "accepted") taskId = response.event.value.taskId;
          }
        })(),
      );
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/^part 3 of 3 could not be completed: the task failed on 3 nodes/);
      const { parent, children } = await rows(taskId);
      expect(parent).toMatchObject({ status: "failed" });
      expect(parent.failure_reason).toContain("part 3 of 3");
      expect(children.find((c) => c.attempt === 3)).toMatchObject({ status: "failed" });
    });
  });

  describe("context", () => {
    // about 4 × 2,048 tokens by the estimate: four times these nodes' context length
    const paragraph = (i: number) =>
      `Paragraph ${i}. ${"The harbour logs record ships, cargo and weather for each day of the season. ".repeat(6)}`;
    const document = Array.from({ length: 64 }, (_, i) => paragraph(i)).join("\n\n");
    const prompt = `Summarise the harbour logs below.\n\n${document}`;

    it("splits a document several times a node's context over nodes, and streams the reduced answer", async () => {
      const readers = await Promise.all([1, 2, 3].map((i) => node({ nodeId: `x-${i}`, contextLength: 2048 })));
      const events = await chat(prompt, { divisionMode: DivisionMode.CONTEXT });
      expect(accepted(events).divisionMode).toBe(DivisionMode.CONTEXT);
      const maps = readers
        .flatMap((r) => r.payloads)
        .filter((p) => /Part \d+ of \d+ of the document/.test(lastUser(p)));
      const count = maps.length;
      expect(count).toBeGreaterThanOrEqual(5);
      const chunks = maps.map((m) => lastUser(m).split("of the document:\n\n")[1]!);
      // every prompt (counted at the estimate: these nodes report no tokenizer) fits the nodes' 2,048 tokens with
      // room for its whole answer
      for (const r of readers) {
        for (const [i, p] of r.payloads.entries()) {
          const prompt = estimateTokens(p.messages.map((m) => m.content).join("\n"));
          expect(prompt + r.assigns[i]!.maxTokens).toBeLessThanOrEqual(2048);
        }
      }
      // the whole document was read, and every node read some of it
      for (let i = 0; i < 64; i++) expect(chunks.some((chunk) => chunk.includes(`Paragraph ${i}.`))).toBe(true);
      for (const r of readers) expect(r.payloads.length).toBeGreaterThan(0);
      expect(textOf(events)).toBe(`Summary from ${Array.from({ length: count }, (_, i) => `note-${i + 1}`).join(" ")}`);
      const { parent, children } = await rows(accepted(events).taskId);
      expect(parent).toMatchObject({ status: "completed", division_mode: "context" });
      expect(children).toHaveLength(count + 1);
      for (const child of children)
        expect(child).toMatchObject({ status: "completed", division_mode: "context", parent_id: parent.id });
      const reduce = readers.flatMap((r) =>
        r.assigns.filter((_, i) => lastUser(r.payloads[i]!).startsWith("A long document")).map((a) => a.taskId),
      );
      expect(children.find((c) => c.id === reduce[0])?.node_id).toBe(done(events).nodeId);
    });

    it("auto picks context for the long document, single for a short question, and says so in accepted", async () => {
      await Promise.all([1, 2].map((i) => node({ nodeId: `a-${i}`, contextLength: 2048 })));
      const long = await chat(prompt, { divisionMode: DivisionMode.AUTO });
      expect(accepted(long).divisionMode).toBe(DivisionMode.CONTEXT);
      expect(textOf(long)).toMatch(/^Summary from note-1 /);
      const short = await chat("What is DNS?", { divisionMode: DivisionMode.AUTO });
      expect(accepted(short).divisionMode).toBe(DivisionMode.SINGLE);
      expect(textOf(short)).toBe("Answer to What is DNS?");
      const { parent, children } = await rows(accepted(short).taskId);
      expect(parent).toMatchObject({ division_mode: "single", status: "completed" });
      expect(children).toEqual([]);
    });
  });
});
