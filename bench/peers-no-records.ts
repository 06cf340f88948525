// Preloaded into a coordinator by bench:peers-trace with PEERS_TRACE_NO_RECORDS=1: the coordinator as it is, but its
// task journal and reputation recorder hear nothing, so that no request's records are kept, batched or written (the
// tasks, their events, the nodes' outcomes). What Iris's records cost one request, in the coordinator and in
// PostgreSQL, is the difference between this target and Iris. Never for a real coordinator: it loses every record.
import { ReputationRecorder } from "../coordinator/reputation/recorder.ts";
import { TaskJournal } from "../coordinator/tasks/journal.ts";

TaskJournal.prototype.created = () => {};
TaskJournal.prototype.update = () => {};
TaskJournal.prototype.note = () => {};
ReputationRecorder.prototype.record = () => {};
