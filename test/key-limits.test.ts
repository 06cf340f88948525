// AccountService.GenerateKey and VerifyKey per client address over real sockets: the configured numbers, the
// refusal with its wait, addresses (IPv6 by /64) apart, and a malformed request never counted.
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { connectFailure } from "./support/errors.ts";

describe("account key rate limits", () => {
  let coordinator: TestCoordinator;
  const grpc = () => createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url }));
  const from = (ip: string) => ({ headers: { "x-forwarded-for": ip } });

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      RATE_LIMIT_GENERATE_KEY_PER_HOUR: "2",
      RATE_LIMIT_VERIFY_KEY_PER_HOUR: "3",
      TRUST_PROXY: "true",
    });
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it(
    "lets one address generate RATE_LIMIT_GENERATE_KEY_PER_HOUR keys an hour, then refuses with the " + "wait",
    async () => {
      const accounts = grpc();
      for (let i = 0; i < 2; i++)
        expect((await accounts.generateKey({}, from("203.0.113.1"))).accountKey).toMatch(/^\d{4} \d{4} \d{4} \d{4}$/);
      const refused = await connectFailure(accounts.generateKey({}, from("203.0.113.1")));
      expect(refused.code).toBe(Code.ResourceExhausted);
      expect(refused.rawMessage).toMatch(
        /^rate limit: 2 GenerateKey calls per 1 h from one address; next allowed in 59 min 5\d s$/,
      );
      expect(Number(refused.metadata.get("retry-after"))).toBeGreaterThan(3_500);
      // the refusal created no account
      expect(
        (
          await coordinator.db
            .selectFrom("accounts")
            .select((eb) => eb.fn.countAll<number>().as("n"))
            .executeTakeFirstOrThrow()
        ).n,
      ).toBe(2);

      // another address has its own allowance; an IPv6 host is its /64
      await expect(accounts.generateKey({}, from("203.0.113.2"))).resolves.toBeDefined();
      await accounts.generateKey({}, from("2001:db8:1:2::1"));
      await accounts.generateKey({}, from("2001:db8:1:2:ffff::9"));
      expect((await connectFailure(accounts.generateKey({}, from("2001:db8:1:2::abcd")))).code).toBe(
        Code.ResourceExhausted,
      );
    },
  );

  it("counts VerifyKey on its own, and not the requests refused as malformed", async () => {
    const ip = "203.0.113.3";
    const accounts = grpc();
    const key = (await accounts.generateKey({}, from(ip))).accountKey;
    for (let i = 0; i < 5; i++) {
      expect((await connectFailure(accounts.verifyKey({ accountKey: "1234-5678" }, from(ip)))).code).toBe(
        Code.InvalidArgument,
      );
    }
    expect((await accounts.verifyKey({ accountKey: key }, from(ip))).valid).toBe(true);
    expect((await accounts.verifyKey({ accountKey: "0000 0000 0000 0001" }, from(ip))).valid).toBe(false);
    expect((await accounts.verifyKey({ accountKey: key.replaceAll(" ", "") }, from(ip))).valid).toBe(true);
    const refused = await connectFailure(accounts.verifyKey({ accountKey: key }, from(ip)));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toMatch(/^rate limit: 3 VerifyKey calls per 1 h/);
    // generating still works from that address: one allowance per method
    await expect(accounts.generateKey({}, from(ip))).resolves.toBeDefined();
  });

  it("says the wait in a retry-after header over Connect (HTTP 429)", async () => {
    const ip = "203.0.113.4";
    const connect = createClient(
      AccountService,
      createConnectTransport({ baseUrl: coordinator.url, httpVersion: "1.1" }),
    );
    await connect.generateKey({}, from(ip));
    await connect.generateKey({}, from(ip));
    const response = await fetch(`${coordinator.url}/iris.v1.AccountService/GenerateKey`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": ip },
      body: "{}",
    });
    expect(response.status).toBe(429);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(3_500);
    expect(await response.json()).toMatchObject({
      code: "resource_exhausted",
      message: expect.stringContaining("GenerateKey"),
    });
  });
});
