// Connection limits over real sockets, HTTP/1.1 and TLS: head and body deadlines, idle closing, the per-address cap.
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, type HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb.ts";
import { makeTestCertificates } from "../test/support/certificates.ts";
import { startTestCoordinator, type TestCoordinator } from "../test/support/coordinator.ts";
import { drip, rawSocket, until } from "../test/support/raw-connection.ts";

const limits = { HTTP_HEADERS_TIMEOUT_MS: "300", HTTP_REQUEST_TIMEOUT_MS: "600", HTTP_IDLE_TIMEOUT_MS: "800" };
const headerLines = Array.from({ length: 100 }, (_, i) => `X-Slow-${i}: drip\r\n`);

describe("HTTP/1.1 deadlines on the one cleartext port", () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await startTestCoordinator(limits);
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it("answers 408 and closes a connection whose request head keeps dribbling in", async () => {
    const raw = await rawSocket(coordinator.port);
    const started = performance.now();
    void drip(raw.socket, ["GET /healthz HTTP/1.1\r\nHost: x\r\n", ...headerLines], 50);
    const closedMs = (await raw.closed) - started;
    console.log(
      `HTTP/1.1 head dripped a line every 50 ms: closed after ${closedMs.toFixed(0)} ms (HTTP_HEADERS_TIMEOUT_MS 300)`,
    );
    expect(raw.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedMs).toBeGreaterThanOrEqual(250);
    // the setting, not the 10 s default: a bound of half the default, loose enough that load cannot reach it
    expect(closedMs).toBeLessThan(5_000);
  });

  it("answers 408 and closes a connection whose request body keeps dribbling in", async () => {
    const raw = await rawSocket(coordinator.port);
    const started = performance.now();
    const head =
      "POST /iris.v1.AccountService/VerifyKey HTTP/1.1\r\nHost: x\r\nContent-Type: " +
      "application/json\r\nContent-Length: 200\r\n\r\n{";
    void drip(raw.socket, [head, ...Array.from({ length: 100 }, () => " ")], 50);
    const closedMs = (await raw.closed) - started;
    console.log(
      `HTTP/1.1 body dripped a byte every 50 ms: closed after ${closedMs.toFixed(0)} ms (HTTP_REQUEST_TIMEOUT_MS 600)`,
    );
    expect(raw.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedMs).toBeGreaterThanOrEqual(550);
    // the setting, not the 60 s default: the message's "within 600 ms" says so (no clock bound needed)
  });

  it("closes a connection that sends nothing, and a kept-alive one left idle", async () => {
    const silent = await rawSocket(coordinator.port);
    const started = performance.now();
    const kept = await rawSocket(coordinator.port);
    kept.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => kept.received().includes("SERVING"));
    const answeredAt = performance.now();
    const silentMs = (await silent.closed) - started;
    const keptMs = (await kept.closed) - answeredAt;
    console.log(
      `HTTP/1.1 idle: silent connection closed after ${silentMs.toFixed(0)} ms, kept-alive one ${keptMs.toFixed(0)} ` +
        `ms after its answer`,
    );
    expect(silent.received()).toBe("");
    expect(silentMs).toBeGreaterThanOrEqual(750);
    // Node adds a second to the keep-alive timeout it announces, for clients' clocks
    expect(keptMs).toBeGreaterThanOrEqual(750);
    // and not the 65 s default: the test's own timeout would end long before that
  });

  it("keeps a long response stream open past every deadline (Health.Watch over HTTP/1.1)", async () => {
    const health = createClient(Health, createConnectTransport({ baseUrl: coordinator.url, httpVersion: "1.1" }));
    const abort = new AbortController();
    const seen: Serving[] = [];
    const watching = (async () => {
      for await (const update of health.watch({ service: "" }, { signal: abort.signal })) seen.push(update.status);
    })().catch((err: unknown) => err);
    await until(() => seen.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // past the head, body and idle deadlines
    expect(await Promise.race([watching.then(() => "ended"), Promise.resolve("open")])).toBe("open");
    abort.abort();
    await watching;
  });
});

describe("the per-address connection cap", () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await startTestCoordinator({ MAX_CONNECTIONS_PER_ADDRESS: "3" });
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it("closes connections over the cap at once, and admits again when one goes", async () => {
    const held = await Promise.all([0, 1, 2].map(() => rawSocket(coordinator.port)));
    const over = await rawSocket(coordinator.port);
    await over.closed;
    // at once, not by a timeout: a timed-out connection would have received a 408
    expect(over.received()).toBe("");
    expect(
      coordinator.logs.filter((line) => line.msg === "connection refused: too many open connections from this address"),
    ).toHaveLength(1);
    for (const socket of held) expect(socket.socket.destroyed).toBe(false);

    held[0]!.socket.destroy();
    await held[0]!.closed;
    // the freed place serves a real request
    const next = await rawSocket(coordinator.port);
    next.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await next.closed;
    expect(next.received()).toMatch(/^HTTP\/1\.1 200 /);
    for (const socket of held.slice(1)) socket.socket.destroy();
  });
});

describe("limits with TLS", () => {
  let coordinator: TestCoordinator;
  let ca: Buffer;
  beforeAll(async () => {
    const certificates = makeTestCertificates();
    ca = readFileSync(certificates.ca);
    coordinator = await startTestCoordinator({
      ...limits,
      HTTP2_MAX_CONCURRENT_STREAMS: "7",
      MAX_CONNECTIONS_PER_ADDRESS: "4",
      TLS_CERT_PATH: certificates.valid.cert,
      TLS_KEY_PATH: certificates.valid.key,
    });
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it("advertises the HTTP/2 stream limit over TLS", async () => {
    const session = http2.connect(coordinator.url, { ca });
    const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
    expect(settings.maxConcurrentStreams).toBe(7);
    session.close();
  });

  it("answers 408 to a dribbled HTTP/1.1 head, and closes a TLS connection that sends no request", async () => {
    const slow = await rawSocket(coordinator.port, { ca, ALPNProtocols: ["http/1.1"] });
    void drip(slow.socket, ["GET /healthz HTTP/1.1\r\nHost: x\r\n", ...headerLines], 50);
    const silent = await rawSocket(coordinator.port, { ca, ALPNProtocols: ["http/1.1"] });
    const started = performance.now();
    await slow.closed;
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
    // Node's head deadline counts from the connection: one that never starts a request is timed out too
    const silentMs = (await silent.closed) - started;
    console.log(
      `TLS HTTP/1.1 connection that sends nothing: closed after ${silentMs.toFixed(0)} ms (HTTP_HEADERS_TIMEOUT_MS ` +
        `300)`,
    );
    expect(silent.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(silentMs).toBeLessThan(5_000); // the 300 ms setting, not the 10 s default: half the default
  });

  it("caps connections per address before the TLS handshake", async () => {
    const held = await Promise.all([0, 1, 2, 3].map(() => rawSocket(coordinator.port, { ca })));
    await expect(rawSocket(coordinator.port, { ca })).rejects.toThrow();
    for (const socket of held) socket.socket.destroy();
  });
});
