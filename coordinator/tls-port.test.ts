// The TLS port: the certificate's dates are checked at start, TLS clients are served through the front door, and
// plaintext sent to the port is answered "use https://" in each protocol's own terms.
import { readFileSync } from "node:fs";
import http from "node:http";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb.ts";
import { TLS_PORT_MESSAGE } from "../common/tls-fault.ts";
import { makeTestCertificates, type TestCertificates } from "../test/support/certificates.ts";
import { startTestCoordinator, type TestCoordinator } from "../test/support/coordinator.ts";
import { connectFailure } from "../test/support/errors.ts";
import { certificateVerdict } from "./tls-port.ts";

const DAY = 86_400_000;
const NOW = Date.UTC(2030, 5, 15);
const dates = (from: number, to: number) =>
  ({ validFrom: new Date(from).toUTCString(), validTo: new Date(to).toUTCString() }) as never;

describe("certificateVerdict", () => {
  it.each([
    { what: "valid for a year", from: NOW - DAY, to: NOW + 365 * DAY, level: undefined, says: undefined },
    { what: "15 days left", from: NOW - DAY, to: NOW + 15 * DAY, level: undefined, says: undefined },
    {
      what: "14 days left",
      from: NOW - DAY,
      to: NOW + 14 * DAY,
      level: "warn",
      says: "expires on 2030-06-29T00:00:00.000Z, in 14 days",
    },
    { what: "hours left", from: NOW - DAY, to: NOW + 5 * 3_600_000, level: "warn", says: "in 5 h" },
    {
      what: "expired",
      from: NOW - 10 * DAY,
      to: NOW - DAY,
      level: "error",
      says: "expired on 2030-06-14T00:00:00.000Z",
    },
    {
      what: "not yet valid",
      from: NOW + DAY,
      to: NOW + 90 * DAY,
      level: "error",
      says: "is not valid before 2030-06-16T00:00:00.000Z",
    },
  ])("$what", ({ from, to, level, says }) => {
    const verdict = certificateVerdict(dates(from, to), NOW);
    expect(verdict?.level).toBe(level);
    if (says) expect(verdict!.message).toContain(says);
  });
});

describe("a coordinator's certificate at start", () => {
  let certs: TestCertificates;
  beforeAll(() => {
    certs = makeTestCertificates();
  });

  it.each([
    {
      which: "expiringSoon" as const,
      level: 40,
      says: /^the TLS certificate \(TLS_CERT_PATH\) expires on .*, in [23] days: renew it/,
    },
    {
      which: "expired" as const,
      level: 50,
      says: /^the TLS certificate \(TLS_CERT_PATH\) expired on 2020-01-02T00:00:00\.000Z/,
    },
    { which: "valid" as const, level: undefined, says: undefined },
  ])("$which: logged at level $level", async ({ which, level, says }) => {
    const coordinator = await startTestCoordinator({
      TLS_CERT_PATH: certs[which].cert,
      TLS_KEY_PATH: certs[which].key,
    });
    try {
      const lines = coordinator.logs.filter(
        (line) => typeof line.msg === "string" && line.msg.startsWith("the TLS certificate"),
      );
      if (!level) return expect(lines).toEqual([]);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level, certPath: certs[which].cert });
      expect(lines[0]!.msg).toMatch(says!);
    } finally {
      await coordinator.close();
    }
  });
});

describe("plaintext on the TLS port", () => {
  let coordinator: TestCoordinator;
  let ca: Buffer;
  let plainUrl: string;
  beforeAll(async () => {
    const certs = makeTestCertificates();
    ca = readFileSync(certs.ca);
    coordinator = await startTestCoordinator({ TLS_CERT_PATH: certs.valid.cert, TLS_KEY_PATH: certs.valid.key });
    plainUrl = coordinator.url.replace("https://", "http://");
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  const expected = () => `${TLS_PORT_MESSAGE}${new URL(coordinator.url).host}`;

  it("TLS clients go through the front door: gRPC over HTTP/2 and Connect over HTTP/1.1", async () => {
    expect(
      (await createClient(Health, createGrpcTransport({ baseUrl: coordinator.url, nodeOptions: { ca } })).check({}))
        .status,
    ).toBe(Serving.SERVING);
    const connect = createClient(
      Health,
      createConnectTransport({ baseUrl: coordinator.url, httpVersion: "1.1", nodeOptions: { ca } }),
    );
    expect((await connect.check({})).status).toBe(Serving.SERVING);
  });

  it("HTTP/1.1 (a browser, curl): 400 with the https:// URL", async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get(`${plainUrl}/healthz`, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => (body += chunk.toString()));
          res.on("end", () => resolve({ status: res.statusCode!, body }));
        })
        .on("error", reject);
    });
    expect(answer).toEqual({ status: 400, body: `${expected()}\n` });
  });

  it.each([
    ["gRPC over h2c (the agent, the CLI)", () => createGrpcTransport({ baseUrl: plainUrl })],
    ["Connect over h2c", () => createConnectTransport({ baseUrl: plainUrl, httpVersion: "2" })],
    ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl: plainUrl, httpVersion: "1.1" })],
    ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: plainUrl, httpVersion: "1.1" })],
  ])("%s: FailedPrecondition, saying to use https://", async (_, transport) => {
    const err = await connectFailure(createClient(Health, transport()).check({}));
    expect([Code[err.code], err.rawMessage]).toEqual([Code[Code.FailedPrecondition], expected()]);
  });
});
