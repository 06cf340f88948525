// What each phase of the relay benchmark (relay.ts) gets: the database, the load process and where to write.
import type { BenchDatabase } from "./database.ts";
import type { LoadProcess } from "./load-control.ts";

export interface BenchContext {
  database: BenchDatabase;
  load: LoadProcess;
  workDir: string;
  quick: boolean;
  /** Runs at the end even when a phase fails (children stopped, database dropped). */
  onCleanup(task: () => Promise<void>): void;
  print(markdown: string): void;
  progress(line: string): void;
}
