// The real `iris-agent` with a dishonest backend, for tests only: every answer it sends is altered
// (test/support/dishonest.ts), so consensus, spot checks and canaries can be seen catching a real agent. Started by
// test/support/agent-process.ts in place of agent/main.ts; the node loses reputation and is suspended.
import { runAgent } from "../../agent/run-agent.ts";
import { dishonestBackend } from "./dishonest.ts";

await runAgent({
  wrapBackend(backend, logger) {
    logger.warn(
      "dishonest test agent: this node alters every answer (a test of the network's checks); it will lose reputation",
    );
    return dishonestBackend(backend);
  },
});
