// Preloaded (`--import ./bench/pglite-main-thread.ts`) into a benchmark's coordinator child: PGlite then runs its
// SQL on the coordinator's own thread, as it did before the worker thread, so the two can be measured side by side.
import { setDefaultPgliteThread } from "../coordinator/db/connect.ts";

setDefaultPgliteThread("main");
