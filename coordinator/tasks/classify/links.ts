// Assembles the coordinator's classifier chain from its configuration: OpenRouter when a key is set, an idle node of
// the cluster, the local model; and the node link that classify results are fed into (by NodeService for nodes
// connected here, by the cluster bus for nodes whose home is another coordinator).
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { sealText } from "../../../common/crypto/envelope.ts";
import { ConnectResponseSchema } from "../../../gen/iris/v1/node_pb.ts";
import type { NodeRegistry } from "../../nodes/registry.ts";
import { createClassifierChain, type ClassifierChain, type ClassifierLink } from "./chain.ts";
import { createNodeClassifier, pickIdleClassifierNodes, type NodeClassifier } from "./node.ts";
import { createOpenRouterClassifier } from "./openrouter.ts";
import { localClassifier, shippedModel } from "./model.ts";

export interface ClassifierChainConfig {
  openRouter: { apiKey?: string; url: string; model: string };
  openRouterBudgetMs: number;
  /** 0: never ask nodes. */
  nodeBudgetMs: number;
  cacheTtlMs: number;
  cacheMaxEntries: number;
}

/** The local model takes microseconds; this only bounds a bug. */
const LOCAL_BUDGET_MS = 100;

export function createCoordinatorClassifier(
  config: ClassifierChainConfig,
  registry: NodeRegistry,
  logger: Logger,
): { chain: ClassifierChain; nodeLink: NodeClassifier | undefined } {
  const links: ClassifierLink[] = [];
  if (config.openRouter.apiKey) {
    const classifier = createOpenRouterClassifier({
      apiKey: config.openRouter.apiKey,
      url: config.openRouter.url,
      model: config.openRouter.model,
    });
    links.push({ name: "openrouter", budgetMs: config.openRouterBudgetMs, classifier });
  }
  let nodeLink: NodeClassifier | undefined;
  if (config.nodeBudgetMs > 0) {
    nodeLink = createNodeClassifier({
      // any node of the cluster: a remote node's assign goes through its home, which sends the answer back here.
      // Each coordinator keeps its own records (learned by its own probes): a remote node's latency includes the hop.
      pickIdleNodes: (kindOf) => pickIdleClassifierNodes((tier) => registry.idleNodes(tier), kindOf),
      send: (node, { classifyId, prompt, deadlineUnixMs }) => {
        // the prompt is the user's text: it travels sealed for this node like a task's payload
        const sealedPrompt = sealText(node.keys.toNode, prompt, { taskId: classifyId, sequence: 0, kind: "classify" });
        return node.send(
          create(ConnectResponseSchema, {
            message: { case: "classifyAssign", value: { classifyId, deadlineUnixMs, sealedPrompt } },
          }),
        );
      },
      budgetMs: config.nodeBudgetMs,
    });
    links.push({ name: "node", budgetMs: config.nodeBudgetMs, classifier: nodeLink });
    const link = nodeLink;
    // every new connection of a node starts afresh, wherever its home (a local one's end is NodeService's to tell;
    // a node that left another coordinator, or moved between homes, is told here): its open assign fails now and
    // its record is forgotten
    registry.onChange((node, change) => {
      if (change === "added" || (change === "removed" && node.remote)) link.nodeGone(node.id);
    });
  }
  // read the model file now: a missing or stale one stops the start-up instead of the first chat
  shippedModel();
  links.push({ name: "local", budgetMs: LOCAL_BUDGET_MS, classifier: localClassifier });
  logger.info(
    {
      links: links.map((link) => `${link.name} (${link.budgetMs} ms)`),
      cacheTtlMs: config.cacheTtlMs,
      cacheMaxEntries: config.cacheMaxEntries,
    },
    "classifier chain",
  );
  const chain = createClassifierChain(links, {
    cacheTtlMs: config.cacheTtlMs,
    cacheMaxEntries: config.cacheMaxEntries,
    logger: logger.child({ component: "classifier" }),
  });
  return { chain, nodeLink };
}
