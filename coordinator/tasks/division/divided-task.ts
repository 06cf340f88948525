// What every divided mode gets: the request after classification (DividedTask) and the services it runs parts
// with (DivisionContext). Its own file so the modes and their dispatch (divided.ts) import it without a circle.
import type { Logger } from "pino";
import type { Config } from "../../config.ts";
import type { Difficulty } from "../../../common/vocabulary.ts";
import type { NodeRegistry } from "../../nodes/registry.ts";
import type { ChatInput } from "../chat.ts";
import type { TaskJournal } from "../journal.ts";
import type { PartRunner } from "../part-runner.ts";
import type { MismatchRecorder } from "./mismatch.ts";

export interface DivisionContext {
  parts: PartRunner;
  registry: NodeRegistry;
  journal: TaskJournal;
  config: Config["division"];
  logger: Logger;
  mismatches: MismatchRecorder;
  /** The clock (ms since the epoch). */
  now: () => number;
}

/** A request after classification, before any node is asked. */
export interface DividedTask {
  taskId: string;
  input: ChatInput;
  /** The normalised model hint. */
  model: string | undefined;
  difficulty: Difficulty;
  classifier: string;
  maxTokens: number;
  started: number;
}
