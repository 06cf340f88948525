// Preloaded into the coordinator by the peers benchmark when it profiles (PEERS_PROFILE): records the SQL statements
// the coordinator's pg clients run, each with its start and answer times (epoch ms, comparable across processes on
// one machine), between two SIGUSR2 signals (the same signals that start and stop bench/profile-hook.ts's profiler),
// then writes <BENCH_PROFILE_DIR>/queries-N.json. It wraps pg.Client.prototype.query only; Iris's code is unchanged.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";

export interface QueryEvent {
  /** the statement, whitespace collapsed, cut at 160 characters */
  sql: string;
  /** epoch ms (performance.timeOrigin + now()) when pg's query() was called, and when it answered or failed */
  start: number;
  end: number;
}

const dir = process.env.BENCH_PROFILE_DIR;
const MAX_EVENTS = 200_000;

if (dir) {
  let counting = false;
  let windows = 0;
  let events: QueryEvent[] = [];
  const original = pg.Client.prototype.query;
  const now = () => performance.timeOrigin + performance.now();
  // pg's query() has many overloads; the wrapper passes every argument through untouched
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const start = now();
    const result = (original as (...a: unknown[]) => unknown).apply(this, args);
    if (counting && events.length < MAX_EVENTS) {
      const first = args[0];
      const text = typeof first === "string" ? first : ((first as { text?: string } | undefined)?.text ?? "(unknown)");
      const record = () => events.push({ sql: text.replace(/\s+/g, " ").trim().slice(0, 160), start, end: now() });
      if (result instanceof Promise) result.then(record, record);
      else record();
    }
    return result;
  } as typeof pg.Client.prototype.query;
  process.on("SIGUSR2", () => {
    if (!counting) {
      events = [];
      counting = true;
      return;
    }
    counting = false;
    writeFileSync(join(dir, `queries-${++windows}.json`), JSON.stringify(events));
  });
}
