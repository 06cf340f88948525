// What a chat request's records cost the database when requests come one at a time: the task journal (with the
// reputation outcome riding its batch) writes one request's records as a real coordinator does (the task created,
// assigned, streaming, completed, the node's outcome), then waits for them, N times; the CPU of this process and of
// its PostgreSQL backend per request, and the statements. Not the whole coordinator: the database's side of
// bench:peers-trace's table, measured alone. `npm run bench:journal` (JOURNAL_REQUESTS=N, default 2000;
// JOURNAL_OUTCOMES=0 leaves the outcome out; JOURNAL_BATCH=N writes N requests' records a batch, as ended tasks
// gathered for TASK_JOURNAL_END_FLUSH_MS are, default 1; needs a PostgreSQL DATABASE_URL).
import { randomUUID } from "node:crypto";
import pg from "pg";
import pino from "pino";
import { openDatabase } from "../coordinator/db/connect.ts";
import { NodeRegistry } from "../coordinator/nodes/registry.ts";
import { ReputationRecorder } from "../coordinator/reputation/recorder.ts";
import { FastCompletionTracker } from "../coordinator/reputation/rules.ts";
import { TaskJournal } from "../coordinator/tasks/journal.ts";
import { insertNode } from "../test/support/node-rows.ts";
import { createBenchDatabase } from "./database.ts";
import { backendSeconds, watchDatabaseBackends } from "./peers-processes.ts";
import { RequestRecords } from "./request-records.ts";
import { fixed, markdownTable } from "./stats.ts";

const url = process.env.DATABASE_URL?.trim();
if (!url?.startsWith("postgres")) {
  console.log("bench:journal needs a PostgreSQL server at DATABASE_URL: skipped");
  process.exit(0);
}
const requests = Number(process.env.JOURNAL_REQUESTS ?? 2000);
/** JOURNAL_OUTCOMES=0: the task records alone, without the node's reputation outcome riding their batch. */
const outcomes = process.env.JOURNAL_OUTCOMES !== "0";
/** JOURNAL_BATCH=N: N requests' records gathered into each batch (as TASK_JOURNAL_END_FLUSH_MS gathers them). */
const batch = Math.max(1, Number(process.env.JOURNAL_BATCH ?? 1));
const database = await createBenchDatabase(url);
const opened = await openDatabase({ url: database.env.DATABASE_URL!, dataDir: "", poolSize: 2 });
let statements = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  statements++;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof query;
try {
  const logger = pino({ level: "warn" });
  const journal = new TaskJournal(opened.db, logger);
  const recorder = new ReputationRecorder(journal, new FastCompletionTracker(), new NodeRegistry(), logger);
  const node = await insertNode(opened.db);
  const backends = await watchDatabaseBackends(database.env.DATABASE_URL);
  const records = new RequestRecords(journal, outcomes ? recorder : undefined, node);
  const record = () => {
    const id = randomUUID();
    records.started(id);
    records.ended(id);
  };
  const one = async () => {
    for (let i = 0; i < batch; i++) record();
    await journal.flush();
    await recorder.settled();
  };
  for (let i = 0; i < 300; i++) await one(); // the JIT, the plans: not measured
  statements = 0;
  const db0 = await backends.snapshot();
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < requests / batch; i++) await one();
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  const db = backendSeconds(db0, await backends.snapshot());
  await backends.close();
  const per = (ms: number) => fixed(ms / requests, 3);
  console.log(
    `## The database's side of one request at a time (${requests} requests, PostgreSQL` +
      `${outcomes ? "" : ", no reputation outcomes"}${batch > 1 ? `, ${batch} requests a batch` : ""})\n\n` +
      markdownTable(
        ["measure", "per request"],
        [
          ["statements (BEGIN and COMMIT included)", fixed(statements / requests, 2)],
          ["wall time, ms (records written and committed)", per(wallMs)],
          ["this process's CPU, ms (Kysely, pg, the journal)", per((cpu.user + cpu.system) / 1000)],
          ["PostgreSQL backend's CPU, ms", db === undefined ? "n/a" : per(db * 1000)],
        ],
        ["l", "r"],
      ),
  );
} finally {
  await opened.close();
  await database.drop();
}
