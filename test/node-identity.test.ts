// A node id belongs to the account and key that registered it first: over real sockets and a real database,
// another account, another key, a replayed register and a silent stream cannot take it; the owner can move it.
import { create } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { generateKeyPairSync } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Channel } from "../common/channel.ts";
import { publicKeyBytes } from "../common/crypto/envelope.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../gen/iris/v1/network_pb.ts";
import { ConnectRequestSchema, NodeService, type ConnectRequest } from "../gen/iris/v1/node_pb.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { runCli } from "./support/cli-process.ts";
import { connectFailure } from "./support/errors.ts";
import { keyFor, startScriptedNode, type ScriptedNode, type ScriptedNodeOptions } from "./support/scripted-node.ts";

describe("node identity", () => {
  let coordinator: TestCoordinator;
  let owner: string;
  let attacker: string;
  const started: ScriptedNode[] = [];
  const transport = () => createGrpcTransport({ baseUrl: coordinator.url });
  const node = (options: Partial<ScriptedNodeOptions> & { nodeId: string; accountKey: string }) => {
    const n = startScriptedNode({ baseUrl: coordinator.url, ...options });
    started.push(n);
    return n;
  };
  const nodeRow = (nodeId: string) =>
    coordinator.db
      .selectFrom("nodes")
      .select(["account_id", "public_key", "reputation"])
      .where("id", "=", nodeId)
      .executeTakeFirstOrThrow();
  const stillConnected = async (n: ScriptedNode, nodeId: string) => {
    // the live node answers a chat, so it still holds its stream and its id
    const chat = await createClient(InferenceService, transport()).chatUnary({
      params: { messages: [{ role: 2, content: "hi" }] },
    });
    expect(chat.text).toBe("Hello, world!");
    expect(chat.accepted?.nodeId).toBe(nodeId);
    const settled = await Promise.race([
      n.ended.then(() => "ended"),
      new Promise((r) => setTimeout(() => r("live"), 50)),
    ]);
    expect(settled).toBe("live");
  };

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ NODE_REGISTER_TIMEOUT_MS: "1000" });
    owner = await newAccountKey(coordinator.url);
    attacker = await newAccountKey(coordinator.url);
  });
  afterEach(() => {
    for (const n of started.splice(0)) n.kill();
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it(
    "refuses another account's registration of a live node's id; the node, its row and its reputation " + "stay",
    async () => {
      const real = node({ nodeId: "victim", accountKey: owner });
      await real.registered;
      const before = await nodeRow("victim");
      const thief = node({ nodeId: "victim", accountKey: attacker });
      const err = await connectFailure(thief.registered);
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toMatch(/node_id: node "victim" is registered to another account/);
      expect(await nodeRow("victim")).toEqual(before);
      await stillConnected(real, "victim");
      expect(thief.assigns).toHaveLength(0);
    },
  );

  it("refuses the same account with another key, and says how the owner moves the node", async () => {
    const real = node({ nodeId: "keyed", accountKey: owner });
    await real.registered;
    const otherKey = generateKeyPairSync("x25519").privateKey;
    const err = await connectFailure(node({ nodeId: "keyed", accountKey: owner, key: otherKey }).registered);
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain(`public_key: node "keyed" is bound to another key`);
    expect(err.rawMessage).toContain(
      `iris node move keyed --public-key ${Buffer.from(publicKeyBytes(otherKey)).toString("base64")}`,
    );
    await stillConnected(real, "keyed");
  });

  it(
    "refuses a replayed register (the right account and public key, but no private key) without displacing the " +
      "node",
    async () => {
      const real = node({ nodeId: "replayed", accountKey: owner });
      await real.registered;
      const replay = node({
        nodeId: "replayed",
        accountKey: owner,
        claimPublicKey: publicKeyBytes(keyFor("replayed")),
        key: generateKeyPairSync("x25519").privateKey,
      });
      const err = await connectFailure(replay.registered);
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toMatch(/register_proof: the node does not hold the private key/);
      await stillConnected(real, "replayed");
    },
  );

  it("lets the node itself reconnect (same account and key): the new connection replaces the old", async () => {
    const first = node({ nodeId: "restarts", accountKey: owner });
    await first.registered;
    const second = node({ nodeId: "restarts", accountKey: owner });
    await second.registered;
    const ended = (await first.ended) as { code?: Code } | undefined;
    expect(ended?.code).toBe(Code.Aborted);
    await stillConnected(second, "restarts");
  });

  it("moves a node to a new key only with its own account key; the old key is refused from then on", async () => {
    const old = node({ nodeId: "mover", accountKey: owner });
    await old.registered;
    const reputation = (await nodeRow("mover")).reputation;
    const newKey = generateKeyPairSync("x25519").privateKey;
    const nodes = createClient(NodeService, transport());
    const move = { nodeId: "mover", publicKey: publicKeyBytes(newKey) };

    expect((await connectFailure(nodes.moveNode({ ...move, accountKey: attacker }))).code).toBe(Code.PermissionDenied);
    expect((await connectFailure(nodes.moveNode({ ...move, accountKey: "0000 0000 0000 0000" }))).code).toBe(
      Code.Unauthenticated,
    );
    const badKey = await connectFailure(nodes.moveNode({ ...move, accountKey: owner, publicKey: new Uint8Array(5) }));
    expect(badKey.code).toBe(Code.InvalidArgument);
    expect(badKey.rawMessage).toMatch(/public_key/);
    expect((await connectFailure(nodes.moveNode({ ...move, nodeId: "nobody", accountKey: owner }))).code).toBe(
      Code.NotFound,
    );

    // the owner moves it with the CLI, as the refusal message says
    const b64 = Buffer.from(move.publicKey).toString("base64");
    const run = await runCli(
      ["--url", coordinator.url, "--account-key", owner, "node", "move", "mover", "--public-key", b64],
      { env: {} },
    );
    expect(run.stderr).toBe("");
    expect(run.stdout).toMatch(/node mover now registers with the new key; its connection with the old key was ended/);
    expect(run.code).toBe(0);
    const ended = (await old.ended) as { code?: Code; rawMessage?: string };
    expect(ended.code).toBe(Code.PermissionDenied);
    expect(ended.rawMessage).toMatch(/moved to another key/);

    const moved = node({ nodeId: "mover", accountKey: owner, key: newKey });
    await moved.registered;
    expect((await nodeRow("mover")).reputation).toBe(reputation);
    const oldAgain = await connectFailure(node({ nodeId: "mover", accountKey: owner }).registered);
    expect(oldAgain.code).toBe(Code.PermissionDenied);
    await stillConnected(moved, "mover");
  });

  it(
    "closes a NodeService stream that does not register in time, and one that registers but never proves its " + "key",
    async () => {
      const silent = new Channel<ConnectRequest>();
      const stream = createClient(NodeService, transport()).connect(silent);
      const err = await connectFailure(
        (async () => {
          for await (const _ of stream) void _;
        })(),
      );
      expect(err.code).toBe(Code.DeadlineExceeded);
      expect(err.rawMessage).toMatch(/no register message within 1000 ms/);

      const mute = new Channel<ConnectRequest>();
      const key = generateKeyPairSync("x25519").privateKey;
      mute.push(
        create(ConnectRequestSchema, {
          message: {
            case: "register",
            value: {
              nodeId: "mute",
              accountKey: owner,
              modelName: "m",
              maxConcurrentTasks: 1,
              publicKey: publicKeyBytes(key),
            },
          },
        }),
      );
      const seen: string[] = [];
      const muteErr = await connectFailure(
        (async () => {
          for await (const response of createClient(NodeService, transport()).connect(mute))
            seen.push(response.message.case ?? "");
        })(),
      );
      expect(seen).toEqual(["registerChallenge"]);
      expect(muteErr.code).toBe(Code.DeadlineExceeded);
      expect(muteErr.rawMessage).toMatch(/no register_proof within/);
      const listed = await createClient(NetworkService, transport()).listNodes({});
      expect(listed.nodes.map((n) => n.nodeId)).not.toContain("mute");
    },
  );
});
