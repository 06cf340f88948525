// `npm run agent` (iris-agent): runs the node agent (agent/run-agent.ts) with the configuration from the environment.
import { runAgent } from "./run-agent.ts";

await runAgent();
