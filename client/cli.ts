// The `iris` command line: chat, accounts and the network's figures over the SDK (run it through bin/iris).
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { generateKey, login, logout, moveNode, register, verifyKey, type AccountIo } from "./cli-account.ts";
import { Interrupts, runChat, type Terminal } from "./cli-chat.ts";
import { palette, wantsColor } from "./color.ts";
import {
  showLeaderboard,
  showModels,
  showNodes,
  showReputation,
  showStats,
  showTasks,
  type NetworkOutput,
} from "./cli-network.ts";
import { loadCredentials, tokenFor } from "./credentials.ts";
import {
  describeFailure,
  EXIT_INTERRUPTED,
  EXIT_OK,
  EXIT_USAGE,
  exitCodeFor,
  UsageError,
  type FailureContext,
} from "./failure.ts";
import { createNodeIrisClient, type IrisClient } from "./sdk-node.ts";
import { DivisionMode } from "../gen/iris/v1/common_pb.ts";
import {
  DEFAULT_URL,
  parseAccountKey,
  parseCaFile,
  parseConsensusNodes,
  parseDivisionMode,
  parseTemperature,
  parseUrl,
  wholeNumber,
  type ChatFlags,
  type GlobalOptions,
} from "./cli-options.ts";

const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

const examples = `
Examples:
  iris chat "Translate good morning to French"   (or iris ask …)
  git diff | iris chat "Write a commit message for this diff"
  iris chat                                  an interactive session (/exit to leave)
  iris chat --json "hi" | jq -r 'select(.type=="token").text'
  iris chat --mode consensus "What is 17 * 23?"   three nodes answer; the majority wins
  iris account generate                      a new account key for your nodes
  iris nodes --online
  IRIS_URL=https://iris.example.org iris stats --json

Exit codes: 0 success, 1 failure (e.g. no node can answer), 2 wrong usage, 130 interrupted.`;

async function main(argv: string[], env: Record<string, string | undefined>, io: Terminal): Promise<number> {
  const interrupts = new Interrupts();
  const failure: FailureContext = { url: env.IRIS_URL ?? DEFAULT_URL, sentSavedToken: false };
  let exitCode = EXIT_OK;
  process.on("SIGINT", () => {
    // the first Ctrl-C cancels the running call (exit 130 follows when it ends); otherwise stop now
    if (!interrupts.cancelCurrent()) process.exit(EXIT_INTERRUPTED);
  });

  /** `anonymous`: account commands send no credential, so a stale login or a wrong key cannot lock the user out. */
  async function connect(command: Command, anonymous = false): Promise<{ client: IrisClient; globals: GlobalOptions }> {
    const globals = command.optsWithGlobals<GlobalOptions>();
    const token = anonymous ? undefined : tokenFor(await loadCredentials(env), globals.url, Date.now());
    failure.url = globals.url;
    failure.sentSavedToken = token !== undefined;
    const accountKey = anonymous ? undefined : globals.accountKey;
    return { client: createNodeIrisClient({ baseUrl: globals.url, accountKey, token, ca: globals.ca }), globals };
  }
  const network = async (command: Command): Promise<{ client: IrisClient; out: NetworkOutput }> => {
    const { client, globals } = await connect(command);
    const json = globals.json === true;
    return {
      client,
      out: { json, stdout: io.stdout, now: Date.now, palette: palette(!json && wantsColor(io.stdout, env)) },
    };
  };
  const account = async (command: Command): Promise<{ client: IrisClient; aio: AccountIo }> => {
    const { client, globals } = await connect(command, true);
    return { client, aio: { json: globals.json === true, url: globals.url, env, ...io } };
  };

  let commandPath = "iris";
  const program = new Command("iris")
    .description("Chat with the Iris network and look at its nodes, tasks and reputation.")
    .version(version, "-V, --version")
    .addOption(new Option("--url <url>", "the coordinator").env("IRIS_URL").default(DEFAULT_URL).argParser(parseUrl))
    .addOption(
      new Option("--account-key <key>", "your account key (keyed rate limits)")
        .env("IRIS_ACCOUNT_KEY")
        .argParser(parseAccountKey),
    )
    .addOption(
      new Option("--ca <file>", "trust this CA (PEM) for an https:// coordinator with a private CA")
        .env("IRIS_CA_PATH")
        .argParser(parseCaFile),
    )
    .option("--json", "print JSON (one object per chat event) instead of text and tables")
    .exitOverride()
    .showHelpAfterError()
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, "iris: ")),
    })
    .addHelpText("after", examples)
    .hook("preAction", (_program, action) => {
      const names: string[] = [];
      for (let c: Command | null = action; c; c = c.parent) names.unshift(c.name());
      commandPath = names.join(" ");
    });

  program
    .command("chat")
    .alias("ask")
    .description(
      "ask the network; tokens stream to stdout as they arrive (no prompt on a terminal: an interactive session)",
    )
    .argument("[prompt...]", "the question; text piped on stdin is appended to it as context")
    .option("--model <name>", "prefer a model (default: the coordinator chooses)")
    .option("--max-tokens <n>", "the most tokens the answer may have", wholeNumber(131_072))
    .option("--temperature <t>", "sampling temperature, 0 to 2", parseTemperature)
    .option("--system <text>", "a system message before the conversation")
    .option(
      "--mode <mode>",
      "how to spread the request over nodes: single (default), subtasks, consensus, context or auto",
      parseDivisionMode,
    )
    .option(
      "--nodes <n>",
      "with --mode consensus: how many nodes answer, 2 to 9 (default: the coordinator's, 3)",
      parseConsensusNodes,
    )
    .option("-q, --quiet", "no footer (tier, node, time to first token, tokens/s) on stderr")
    .action(async (words: string[], options: ChatFlags, command: Command) => {
      if (options.nodes !== undefined && options.mode !== DivisionMode.CONSENSUS)
        throw new UsageError("--nodes needs --mode consensus");
      const { client, globals } = await connect(command);
      const chatOptions = {
        ...options,
        json: globals.json === true,
        quiet: options.quiet === true,
        palette: palette(wantsColor(io.stderr, env)),
      };
      exitCode = await runChat(client, words, chatOptions, io, interrupts, failure);
    });

  const accountCommand = program
    .command("account")
    .description("anonymous account keys (16 digits) for nodes and rate limits");
  accountCommand
    .command("generate")
    .description("make a new account key; it is shown once")
    .action(async (_options, command: Command) => {
      const { client, aio } = await account(command);
      exitCode = await generateKey(client, aio);
    });
  accountCommand
    .command("verify")
    .description("check that an account key exists (exit 1 when it does not)")
    .argument("[key]", "the key (default: --account-key / IRIS_ACCOUNT_KEY)")
    .action(async (key: string | undefined, _options, command: Command) => {
      const { client, aio } = await account(command);
      exitCode = await verifyKey(client, aio, key ?? command.optsWithGlobals<GlobalOptions>().accountKey);
    });

  program
    .command("node")
    .description("your nodes' identity")
    .command("move")
    .description("bind a node id to a new public key (a new machine or key file); the old key is refused from then on")
    .argument("<node-id>", "the node id (NODE_ID)")
    .requiredOption("--public-key <base64>", "the new key, as the refused agent printed it")
    .action(async (nodeId: string, options: { publicKey: string }, command: Command) => {
      const { client, aio } = await account(command);
      exitCode = await moveNode(
        client,
        aio,
        nodeId,
        options.publicKey,
        command.optsWithGlobals<GlobalOptions>().accountKey,
      );
    });

  for (const [name, description, run] of [
    [
      "register",
      "create an email/password user and save its login (password: prompt, IRIS_PASSWORD or stdin)",
      register,
    ],
    ["login", "sign in and save the login for later commands (password: prompt, IRIS_PASSWORD or stdin)", login],
  ] as const) {
    program
      .command(name)
      .description(description)
      .requiredOption("--email <email>", "the user's email address")
      .action(async (options: { email: string }, command: Command) => {
        const { client, aio } = await account(command);
        exitCode = await run(client, aio, options.email);
      });
  }
  program
    .command("logout")
    .description("forget the saved login")
    .action(async (_options, command: Command) => {
      exitCode = await logout({
        json: command.optsWithGlobals<GlobalOptions>().json === true,
        url: failure.url,
        env,
        ...io,
      });
    });

  program
    .command("stats")
    .description("the network now: nodes online by tier, tasks, queue, tokens/s")
    .action(async (_options, command: Command) => {
      const { client, out } = await network(command);
      await showStats(client, out);
    });
  program
    .command("nodes")
    .description("nodes with tier, model, GPU, speed and reputation; online ones first")
    .option("--online", "only nodes connected now")
    .option("--limit <n>", "at most this many", wholeNumber(1000), 100)
    .action(async (options: { online?: boolean; limit: number }, command: Command) => {
      const { client, out } = await network(command);
      await showNodes(client, out, { onlineOnly: options.online === true, limit: options.limit });
    });
  program
    .command("tasks")
    .description("recent tasks, newest first")
    .option("--node <id>", "only this node's tasks")
    .option("--limit <n>", "at most this many", wholeNumber(1000), 50)
    .action(async (options: { node?: string; limit: number }, command: Command) => {
      const { client, out } = await network(command);
      await showTasks(client, out, { limit: options.limit, nodeId: options.node });
    });
  program
    .command("leaderboard")
    .description("nodes ranked by reputation")
    .option("--limit <n>", "at most this many", wholeNumber(1000), 20)
    .action(async (options: { limit: number }, command: Command) => {
      const { client, out } = await network(command);
      await showLeaderboard(client, out, options.limit);
    });
  program
    .command("reputation")
    .description("one node's reputation and its history of changes, newest first")
    .argument("<node>", "the node's id")
    .option("--limit <n>", "at most this many events", wholeNumber(1000), 100)
    .action(async (nodeId: string, options: { limit: number }, command: Command) => {
      const { client, out } = await network(command);
      await showReputation(client, out, nodeId, options.limit);
    });
  program
    .command("models")
    .description("the models that connected nodes serve now")
    .action(async (_options, command: Command) => {
      const { client, out } = await network(command);
      await showModels(client, out);
    });

  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (err) {
    // commander has printed its message (and the help) already; --help and --version end here with 0
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    io.stderr.write(`iris: ${describeFailure(err, failure)}\n`);
    if (err instanceof UsageError) io.stderr.write(`(see \`${commandPath} --help\`)\n`);
    return interrupts.interrupted ? EXIT_INTERRUPTED : exitCodeFor(err);
  }
}

// `iris chat … | head -c 100`: the reader has all it wanted, which is no failure: end quietly, with 0
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(EXIT_OK);
  });
}

const code = await main(process.argv.slice(2), process.env, {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
process.exitCode = code;
// An idle HTTP/2 connection does not hold the process; this only guards against anything else that would.
setTimeout(() => process.exit(code), 2000).unref();
