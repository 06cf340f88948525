// The PGlite worker thread: owns the embedded database and runs the statements it is sent, one after another.
// Started by pglite-worker-client.ts; workerData is { dataDir?: string } (none: in memory).
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import {
  type SerializedError,
  serializeError,
  type WorkerHello,
  type WorkerReply,
  type WorkerRequest,
} from "./pglite-protocol.ts";
import { BYTEA, parsers } from "./type-parsers.ts";

// Replies wait for the rest of a busy queue at most this long or this many, so the coordinator's thread wakes
// once per batch rather than once per statement, yet never sits on an answer for long.
const REPLY_BATCH_MAX = 64;
const REPLY_BATCH_MS = 1;

if (!parentPort) throw new Error("pglite-worker.ts runs only as a worker thread");
const port = parentPort;
const { dataDir } = workerData as { dataDir?: string };

const hello = (message: WorkerHello) => port.postMessage(message);
let pglite: PGlite;
try {
  pglite = await PGlite.create({ ...(dataDir ? { dataDir } : {}), parsers });
} catch (err) {
  hello({ fatal: serializeError(err) });
  process.exit(1);
}
hello({ ready: true });

const queue: WorkerRequest[] = [];
let running = false;
port.on("message", (batch: WorkerRequest[]) => {
  for (const request of batch) queue.push(request);
  if (!running) void drain();
});

async function drain(): Promise<void> {
  running = true;
  let replies: WorkerReply[] = [];
  let oldest = 0;
  const flush = () => {
    if (replies.length > 0) port.postMessage(replies);
    replies = [];
  };
  let next = 0;
  while (next < queue.length) {
    const request = queue[next++]!;
    if ("close" in request) {
      flush();
      await pglite.close().catch(() => {});
      port.postMessage([{ id: request.id, closed: true }] satisfies WorkerReply[]);
      port.close(); // nothing else keeps the thread alive: it exits
      return;
    }
    const { reply, fatal } = await execute(request);
    if (replies.length === 0) oldest = performance.now();
    replies.push(reply);
    if (fatal) {
      flush();
      process.exit(1); // the coordinator's thread fails what is left as "database unavailable"
    }
    if (next === queue.length || replies.length >= REPLY_BATCH_MAX || performance.now() - oldest >= REPLY_BATCH_MS)
      flush();
  }
  queue.length = 0;
  running = false;
}

async function execute(request: {
  id: number;
  sql: string;
  parameters: readonly unknown[];
}): Promise<{ reply: WorkerReply; fatal?: boolean }> {
  try {
    const result = await pglite.query<Record<string, unknown>>(request.sql, request.parameters as unknown[], {
      rowMode: "object",
    });
    const bytea = result.fields.filter((field) => field.dataTypeID === BYTEA).map((field) => field.name);
    const reply: WorkerReply = { id: request.id, rows: result.rows, affectedRows: result.affectedRows };
    const command = (result as { command?: string }).command;
    if (command) reply.command = command;
    if (bytea.length > 0) reply.bytea = bytea;
    return { reply };
  } catch (err) {
    const error: SerializedError = serializeError(err);
    // a trap inside the WebAssembly module (WebAssembly.RuntimeError) leaves PGlite unusable: end the thread rather
    // than answer wrongly
    return { reply: { id: request.id, error }, fatal: err instanceof Error && err.name === "RuntimeError" };
  }
}
