// A node's running tasks that tell the node when one is added or removed: a slot taken or freed (the cluster view).
import type { TaskSink } from "./task-sink.ts";

/** Told of each task added or removed; `clear()` (the node is gone) tells once, with no task. */
export type TaskChange = (change: { taskId: string; sink: TaskSink; added: boolean } | undefined) => void;

export class TaskTable extends Map<string, TaskSink> {
  constructor(private readonly onChange: TaskChange) {
    super();
  }
  override set(taskId: string, sink: TaskSink): this {
    super.set(taskId, sink);
    this.onChange({ taskId, sink, added: true });
    return this;
  }
  override delete(taskId: string): boolean {
    const sink = super.get(taskId);
    if (!super.delete(taskId)) return false;
    this.onChange({ taskId, sink: sink!, added: false });
    return true;
  }
  override clear(): void {
    const had = this.size > 0;
    super.clear();
    if (had) this.onChange(undefined);
  }
}
