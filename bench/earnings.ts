// What the month-to-date earnings estimate costs the database as the month's work grows: the coordinator reads it every
// EARNINGS_ESTIMATE_MS (1 min). Seeds a month of completed tasks (each with its task_completed and fast_completion
// events, as the journal writes them) and times the estimate's refresh, which reads the work that ended since its last
// one (a window: a minute's work at the rate the window's size stands for), beside a read of the whole month (what
// every refresh read until 2026-12-07, and what the month's payout reads once). `npm run bench:earnings`
// (EARNINGS_TASKS: the month's sizes, default 20000,100000,300000; EARNINGS_WINDOW: tasks in the window, default 500;
// needs a PostgreSQL DATABASE_URL).
import { sql } from "kysely";
import { openDatabase } from "../coordinator/db/connect.ts";
import { monthContributions } from "../coordinator/economics/payouts.ts";
import { insertNode } from "../test/support/node-rows.ts";
import { createBenchDatabase } from "./database.ts";
import { fixed, markdownTable } from "./stats.ts";

const url = process.env.DATABASE_URL?.trim();
if (!url?.startsWith("postgres")) {
  console.log("bench:earnings needs a PostgreSQL server at DATABASE_URL: skipped");
  process.exit(0);
}
const sizes = (process.env.EARNINGS_TASKS ?? "20000,100000,300000").split(",").map(Number);
const windowTasks = Number(process.env.EARNINGS_WINDOW ?? 500);
const ROUNDS = 3;
/** One completed task a millisecond from here: the seeded month is `tasks` ms long, a window of W tasks W ms. */
const MONTH_START = Date.parse("2026-12-01T00:00:00Z");

/** Each of ROUNDS reads' wall time, ms. */
async function time(read: () => Promise<unknown>): Promise<string> {
  const ms: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    await read();
    ms.push(performance.now() - started);
  }
  return ms.map((value) => fixed(value, 1)).join(", ");
}

const database = await createBenchDatabase(url);
const opened = await openDatabase({ url: database.env.DATABASE_URL!, dataDir: "", poolSize: 2 });
const rows: string[][] = [];
try {
  const node = await insertNode(opened.db);
  let seeded = 0;
  for (const size of sizes) {
    await sql`INSERT INTO tasks (status, difficulty, node_id, completion_tokens, created_at, completed_at)
      SELECT 'completed', 'SIMPLE', ${node.id}, 16, ${new Date(MONTH_START)}::timestamptz + g * interval '1 ms',
             ${new Date(MONTH_START)}::timestamptz + g * interval '1 ms'
        FROM generate_series(${seeded + 1}::int, ${size}::int) g`.execute(opened.db);
    await sql`INSERT INTO reputation_events (node_id, account_id, rule, delta, task_id, period_key, created_at)
      SELECT t.node_id, ${node.accountId}::uuid, r.rule, r.delta, t.id, 'task:' || t.id, t.completed_at
        FROM tasks t CROSS JOIN (VALUES ('task_completed', 10.0), ('fast_completion', 5.0)) r(rule, delta)
       WHERE t.completed_at > ${new Date(MONTH_START + seeded)}`.execute(opened.db);
    await sql`ANALYZE`.execute(opened.db);
    seeded = size;
    const end = MONTH_START + size;
    const whole = await time(() => monthContributions(opened.db, new Date(MONTH_START), new Date(end)));
    const window = await time(() => monthContributions(opened.db, new Date(end - windowTasks), new Date(end)));
    rows.push([size.toLocaleString("en-US"), whole, window]);
  }
  console.log(
    "## The earnings estimate's read as the month grows (bench:earnings)\n\n" +
      "PostgreSQL, one node, one completed task a millisecond with its two reputation events; " +
      `${ROUNDS} reads each, ms.\n\n` +
      markdownTable(
        [
          "tasks this month",
          "the whole month (each refresh, before)",
          `a window of ${windowTasks} tasks (a refresh now)`,
        ],
        rows,
        ["r", "r", "r"],
      ),
  );
} finally {
  await opened.close();
  await database.drop();
}
