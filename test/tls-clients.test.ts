// Real agents and the real CLI against coordinators with certificates from a private CA (generated with openssl):
// COORDINATOR_CA_PATH and --ca / IRIS_CA_PATH let them in; an untrusted, expired or wrong-host certificate, or http://
// to the TLS port, stops the agent with exit code 4 after a short retry and the CLI with exit code 1, saying what is
// wrong.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { writeTinyGguf } from "./fixtures/tiny-gguf.ts";
import { startAgent } from "./support/agent-process.ts";
import { makeTestCertificates, type TestCertificates } from "./support/certificates.ts";
import { runCli } from "./support/cli-process.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";

/** An agent that never gets as far as registering needs a key of the right shape only. */
const UNUSED_KEY = "1111 2222 3333 4444";

describe("TLS with a private CA", () => {
  let certs: TestCertificates;
  let secure: TestCoordinator;
  let expired: TestCoordinator;
  let modelPath: string;
  let accountKey: string;
  const port = () => new URL(secure.url).port;

  beforeAll(async () => {
    certs = makeTestCertificates();
    modelPath = join(mkdtempSync(join(tmpdir(), "iris-tls-agents-")), "tiny.gguf");
    writeTinyGguf(modelPath);
    [secure, expired] = await Promise.all([
      startTestCoordinator({
        TLS_CERT_PATH: certs.valid.cert,
        TLS_KEY_PATH: certs.valid.key,
        HEARTBEAT_INTERVAL_MS: "500",
      }),
      startTestCoordinator({ TLS_CERT_PATH: certs.expired.cert, TLS_KEY_PATH: certs.expired.key }),
    ]);
    const transport = createGrpcTransport({ baseUrl: secure.url, nodeOptions: { ca: readFileSync(certs.ca) } });
    accountKey = (await createClient(AccountService, transport).generateKey({})).accountKey;
  });
  afterAll(async () => {
    await Promise.all([secure?.close(), expired?.close()]);
  });

  const agentEnv = (nodeId: string, env: Record<string, string>) => ({
    IRIS_ACCOUNT_KEY: UNUSED_KEY,
    NODE_ID: nodeId,
    IRIS_MODEL: modelPath,
    NODE_KEY_PATH: join(tmpdir(), `iris-tls-${nodeId}-${process.pid}.key`),
    ...env,
  });

  it("an agent with COORDINATOR_CA_PATH registers over TLS", async () => {
    const agent = startAgent(
      agentEnv("tls-trusted", {
        COORDINATOR_URL: secure.url,
        COORDINATOR_CA_PATH: certs.ca,
        IRIS_ACCOUNT_KEY: accountKey,
      }),
    );
    try {
      await agent.waitForLog((line) => line.msg === "registered with the coordinator", 60_000);
      expect(secure.registry.get("tls-trusted")?.connected).toBe(true);
    } finally {
      agent.kill();
      await agent.exited;
    }
  }, 90_000);

  it.concurrent.each([
    {
      fault: "untrusted",
      env: () => ({ COORDINATOR_URL: secure.url }),
      says: () =>
        "is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE): set COORDINATOR_CA_PATH to the " +
        "PEM file of the CA that signed it",
    },
    {
      fault: "expired",
      env: () => ({ COORDINATOR_URL: expired.url, COORDINATOR_CA_PATH: certs.ca }),
      says: () => "(CN=127.0.0.1, issued by CN=Iris Test CA) expired on 2020-01-02T00:00:00.000Z (CERT_HAS_EXPIRED)",
    },
    {
      fault: "wrong_host",
      env: () => ({ COORDINATOR_URL: `https://localhost:${port()}`, COORDINATOR_CA_PATH: certs.ca }),
      says: () => "is not for localhost: it names IP Address:127.0.0.1 (ERR_TLS_CERT_ALTNAME_INVALID)",
    },
    {
      fault: "tls_port",
      env: () => ({ COORDINATOR_URL: `http://127.0.0.1:${port()}` }),
      says: () => `the coordinator speaks TLS: use https://127.0.0.1:${port()} (the URL says http://)`,
    },
  ])(
    "$fault: the agent retries briefly, then exits 4 saying what is wrong",
    async ({ fault, env, says }) => {
      const agent = startAgent(agentEnv(`tls-${fault}`, env()));
      const code = await agent.exited;
      expect(code, agent.stderr()).toBe(4);
      expect(agent.stderr()).toContain(`iris-agent: cannot connect to the coordinator: `);
      expect(agent.stderr()).toContain(says());
      // a bounded retry (three attempts), logged as TLS faults, never as a lost connection
      const retries = agent.logs.filter((line) => line.msg === "TLS fault talking to the coordinator; trying again");
      expect(retries).toHaveLength(2);
      expect(agent.logs.some((line) => String(line.msg).includes("connection to the coordinator lost"))).toBe(false);
      const final = agent.logs.find((line) => line.level === 50 && line.tlsFault === fault);
      expect(final?.msg).toContain(says());
    },
    90_000,
  );

  it("an unreadable COORDINATOR_CA_PATH is a configuration error (exit 2)", async () => {
    const agent = startAgent(
      agentEnv("tls-no-ca", { COORDINATOR_URL: secure.url, COORDINATOR_CA_PATH: "/nonexistent/ca.pem" }),
    );
    expect(await agent.exited).toBe(2);
    expect(agent.stderr()).toContain("COORDINATOR_CA_PATH: cannot read /nonexistent/ca.pem");
  }, 60_000);

  describe("the iris CLI", () => {
    it(
      "http:// to the TLS port: exit 1, 'the coordinator speaks TLS: use https://' (not 130, which is " + "Ctrl-C's)",
      async () => {
        const run = await runCli(["stats", "--url", `http://127.0.0.1:${port()}`], { env: {} });
        expect(run.code).toBe(1);
        expect(run.stderr).toBe(
          `iris: the coordinator speaks TLS: use https://127.0.0.1:${port()} (the URL says http://)\n`,
        );
      },
    );

    it("a private CA: refused without --ca, trusted with --ca or IRIS_CA_PATH", async () => {
      const without = await runCli(["stats", "--url", secure.url], { env: {} });
      expect(without.code).toBe(1);
      expect(without.stderr).toContain(
        "is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE): set --ca or IRIS_CA_PATH",
      );
      const flag = await runCli(["stats", "--url", secure.url, "--ca", certs.ca], { env: {} });
      expect(flag.code, flag.stderr).toBe(0);
      expect(flag.stdout).toMatch(/nodes online/);
      const variable = await runCli(["stats", "--json"], { env: { IRIS_URL: secure.url, IRIS_CA_PATH: certs.ca } });
      expect(variable.code, variable.stderr).toBe(0);
      const missing = await runCli(["stats", "--url", secure.url, "--ca", "/nonexistent/ca.pem"], { env: {} });
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain("cannot read /nonexistent/ca.pem");
    });
  });
});
