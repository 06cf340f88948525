// Chat traffic for the reliability suite: streams from many concurrent clients, each request tallied as completed,
// failed with a reason, or lost (no end, or an end without a reason); then the task rows checked for leftovers.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Kysely } from "kysely";
import type { Database } from "../coordinator/db/schema.ts";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";

export interface Tally {
  requests: number;
  completed: number;
  /** Failures that came with a Connect code and a message, by "Code: message" (ids and numbers blanked). */
  failed: Map<string, number>;
  /** Requests whose stream never ended, or ended without `done` and without an error saying why. */
  lost: number;
  /** Task ids whose client saw `done`: their rows must say completed. */
  doneTaskIds: string[];
}

export interface LoadOptions {
  /** A function, so a test can point the clients at a restarted coordinator. */
  url: () => string;
  concurrency: number;
  /** Keeps sending while this is true. */
  running: () => boolean;
  maxTokens?: number;
  /** A request with no end after this long is lost (the client gives up). */
  clientTimeoutMs?: number;
}

const prompts = [
  "Say hello.",
  "Name a colour.",
  "Count to three.",
  "What is a cat?",
  "Give me a word.",
  "Say something short.",
];

/** Runs the load until `running()` turns false and every request in flight has ended. */
export async function chatLoad(options: LoadOptions): Promise<Tally> {
  const tally: Tally = { requests: 0, completed: 0, failed: new Map(), lost: 0, doneTaskIds: [] };
  const clientTimeoutMs = options.clientTimeoutMs ?? 120_000;
  const worker = async (index: number) => {
    // one connection per client, as a real client keeps it (a new one only when the coordinator's address changes)
    let client: { url: string; inference: Inference } | undefined;
    for (let n = 0; options.running(); n++) {
      tally.requests++;
      const url = options.url();
      if (client?.url !== url)
        client = { url, inference: createClient(InferenceService, createGrpcTransport({ baseUrl: url })) };
      const outcome = await oneChat(
        client.inference,
        prompts[(index + n) % prompts.length]!,
        options.maxTokens ?? 16,
        clientTimeoutMs,
      );
      if (outcome.kind === "completed") {
        tally.completed++;
        if (outcome.taskId) tally.doneTaskIds.push(outcome.taskId);
      } else if (outcome.kind === "failed") {
        tally.failed.set(outcome.reason, (tally.failed.get(outcome.reason) ?? 0) + 1);
        // a refused client waits a little, as a real one would, instead of spinning on a down coordinator
        await new Promise((resolve) => setTimeout(resolve, 250));
      } else {
        tally.lost++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  return tally;
}

type Outcome = { kind: "completed"; taskId?: string } | { kind: "failed"; reason: string } | { kind: "lost" };

type Inference = Client<typeof InferenceService>;

async function oneChat(inference: Inference, prompt: string, maxTokens: number, timeoutMs: number): Promise<Outcome> {
  const signal = AbortSignal.timeout(timeoutMs);
  let taskId: string | undefined;
  try {
    for await (const response of inference.chat(
      { params: { messages: [{ role: Role.USER, content: prompt }], maxTokens } },
      { signal },
    )) {
      const event = response.event;
      if (event.case === "accepted") taskId = event.value.taskId;
      if (event.case === "done") return { kind: "completed", taskId };
    }
    return { kind: "lost" }; // the stream ended cleanly without saying the answer was done
  } catch (err) {
    if (signal.aborted) return { kind: "lost" };
    const error = ConnectError.from(err);
    if (!error.rawMessage.trim()) return { kind: "lost" };
    return { kind: "failed", reason: `${Code[error.code]}: ${blank(error.rawMessage)}` };
  }
}

/** The message with ids and numbers blanked, so failures of one kind count together. */
function blank(message: string): string {
  return message
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<id>")
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+(\.\d+)?/g, "N")
    .slice(0, 120);
}

export interface Leftovers {
  /** Task rows still queued, assigned or streaming. */
  dangling: number;
  /** Tasks a client saw done whose row is missing or says neither completed nor interrupted. */
  recordsLost: number;
  /**
   * Tasks a client saw done whose completion was still in the coordinator's memory when it was SIGKILLed (records are
   * written behind the token path, every 20 ms): the restarted coordinator ended them `failed`, "stopped before the
   * task ended". Only a coordinator kill makes these.
   */
  recordsInterrupted: number;
  /**
   * Requests' tasks recorded completed by a node with no reputation event for it: an outcome lost (it commits with
   * the task's end). Spot checks and canaries earn nothing by design; divided requests' parts are not counted.
   */
  outcomesLost: number;
}

/** What the database says after the scenario settled. */
export async function leftovers(db: Kysely<Database>, tally: Tally): Promise<Leftovers> {
  const open = await db
    .selectFrom("tasks")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("status", "in", ["queued", "assigned", "streaming"])
    .executeTakeFirstOrThrow();
  let recordsLost = 0;
  let recordsInterrupted = 0;
  for (let i = 0; i < tally.doneTaskIds.length; i += 500) {
    const ids = tally.doneTaskIds.slice(i, i + 500);
    const rows = await db
      .selectFrom("tasks")
      .select(["id", "status", "failure_reason"])
      .where("id", "in", ids)
      .execute();
    const status = new Map(rows.map((r) => [r.id, r]));
    for (const id of ids) {
      const row = status.get(id);
      if (row?.status === "completed") continue;
      if (row?.status === "failed" && row.failure_reason?.includes("stopped before the task ended"))
        recordsInterrupted++;
      else recordsLost++;
    }
  }
  const unjudged = await db
    .selectFrom("tasks")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("status", "=", "completed")
    .where("node_id", "is not", null)
    // a request's own task: checks earn nothing by design, and a consensus part is judged after the vote
    .where("parent_id", "is", null)
    .where((eb) => eb.or([eb("classifier", "is", null), eb("classifier", "not in", ["spot_check", "canary"])]))
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom("reputation_events").select("id").whereRef("reputation_events.task_id", "=", "tasks.id"))),
    )
    .executeTakeFirstOrThrow();
  return { dangling: Number(open.n), recordsLost, recordsInterrupted, outcomesLost: Number(unjudged.n) };
}

/** One row of the suite's table, printed as markdown so it can go straight into docs/faults.md. */
export function report(scenario: string, tally: Tally, left: Leftovers, note = ""): string {
  const failed = [...tally.failed.values()].reduce((a, b) => a + b, 0);
  const reasons = [...tally.failed.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([r, n]) => `${n}× ${r}`)
    .join("; ");
  const row =
    `| ${scenario} | ${tally.requests} | ${tally.completed} | ${failed} | ${tally.lost} | ${left.dangling} ` +
    `| ${left.recordsLost} | ${left.recordsInterrupted} | ${left.outcomesLost} ` +
    `| ${[note, reasons].filter(Boolean).join(" — ")} |`;
  console.log(
    `\n| scenario | requests | completed | failed with a reason | lost | dangling task rows | records lost | done, ` +
      `then interrupted | completed without their reputation outcome | notes, top reasons |\n` +
      `|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n${row}\n`,
  );
  return row;
}
