// Assembles the coordinator's classifier chain from its configuration: OpenRouter when a key is set, an idle
// connected node, the local model; and the node link that NodeService feeds classify results into.
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { sealText } from "../../../common/crypto/envelope.ts";
import { ConnectResponseSchema } from "../../../gen/iris/v1/node_pb.ts";
import type { NodeRegistry } from "../../nodes/registry.ts";
import { createClassifierChain, type ClassifierChain, type ClassifierLink } from "./chain.ts";
import { createNodeClassifier, pickIdleClassifierNode, type NodeClassifier } from "./node.ts";
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
      // classify assigns are not forwarded over the cluster bus: only nodes connected here are asked
      pickIdleNode: (eligible) =>
        pickIdleClassifierNode(
          [...registry.nodes()].filter((node) => !node.remote),
          eligible,
        ),
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
