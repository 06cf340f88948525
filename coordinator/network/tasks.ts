// Recent tasks as the network reports them: the tasks table's rows mapped onto TaskInfo.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Kysely } from "kysely";
import { DivisionMode, Tier } from "../../gen/iris/v1/common_pb.ts";
import { TaskPurpose, TaskStatus, type TaskInfoSchema } from "../../gen/iris/v1/network_pb.ts";
import type { Database, TaskRow, TaskStatus as TaskStatusName } from "../db/schema.ts";
import type { DivisionMode as DivisionModeName } from "../../common/vocabulary.ts";
import { difficultyToProto, tierToProto } from "../../common/vocabulary.ts";

export type TaskInfoInit = MessageInitShape<typeof TaskInfoSchema>;

const statusEnum: Record<TaskStatusName, TaskStatus> = {
  queued: TaskStatus.QUEUED,
  assigned: TaskStatus.ASSIGNED,
  streaming: TaskStatus.STREAMING,
  completed: TaskStatus.COMPLETED,
  failed: TaskStatus.FAILED,
  cancelled: TaskStatus.CANCELLED,
};
const divisionModeEnum: Record<DivisionModeName, DivisionMode> = {
  single: DivisionMode.SINGLE,
  subtasks: DivisionMode.SUBTASKS,
  consensus: DivisionMode.CONSENSUS,
  context: DivisionMode.CONTEXT,
};

/** Checks are rows like any task, told apart by the classifier column the spot checker writes. */
function purposeOf(classifier: string | null): TaskPurpose {
  if (classifier === "spot_check") return TaskPurpose.SPOT_CHECK;
  if (classifier === "canary") return TaskPurpose.CANARY;
  return TaskPurpose.REQUEST;
}

const columns = [
  "classifier",
  "id",
  "parent_id",
  "status",
  "difficulty",
  "tier",
  "division_mode",
  "node_id",
  "prompt_tokens",
  "completion_tokens",
  "ttft_ms",
  "total_ms",
  "failure_reason",
  "created_at",
] as const;

function taskInfo(row: Pick<TaskRow, (typeof columns)[number]>): TaskInfoInit {
  return {
    taskId: row.id,
    status: statusEnum[row.status],
    difficulty: difficultyToProto[row.difficulty],
    tier: row.tier ? tierToProto[row.tier] : Tier.UNSPECIFIED,
    nodeId: row.node_id ?? "",
    usage: { promptTokens: row.prompt_tokens, completionTokens: row.completion_tokens },
    timeToFirstTokenMs: row.ttft_ms ?? 0,
    totalMs: row.total_ms ?? 0,
    failureReason: row.failure_reason ?? "",
    createdAtUnixMs: BigInt(row.created_at.getTime()),
    divisionMode: divisionModeEnum[row.division_mode],
    parentTaskId: row.parent_id ?? "",
    purpose: purposeOf(row.classifier),
  };
}

/** Newest first (ties by id, so the order is stable); only `nodeId`'s tasks when given. */
export async function recentTasks(
  db: Kysely<Database>,
  options: { nodeId?: string; limit: number },
): Promise<TaskInfoInit[]> {
  let query = db
    .selectFrom("tasks")
    .select(columns)
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .limit(options.limit);
  if (options.nodeId) query = query.where("node_id", "=", options.nodeId);
  return (await query.execute()).map(taskInfo);
}
