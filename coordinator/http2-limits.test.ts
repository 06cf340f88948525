// HTTP/2 limits over real h2c sockets: the advertised stream limit, body deadline, idle sessions, agents' streams
// exempt.
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "../test/support/coordinator.ts";
import { FrameType, frame, postHeaders, rawHttp2, until } from "../test/support/raw-connection.ts";
import { startScriptedNode } from "../test/support/scripted-node.ts";

const REFUSED_STREAM = 7;

describe("HTTP/2 limits", () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HTTP_HEADERS_TIMEOUT_MS: "300",
      HTTP_REQUEST_TIMEOUT_MS: "600",
      HTTP_IDLE_TIMEOUT_MS: "800",
      HTTP2_MAX_CONCURRENT_STREAMS: "4",
      NODE_REGISTER_TIMEOUT_MS: "300",
    });
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it("advertises the stream limit in SETTINGS", async () => {
    const session = http2.connect(coordinator.url);
    const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
    expect(settings.maxConcurrentStreams).toBe(4);
    session.close();
  });

  it("refuses streams over the limit from a client that ignores it, and keeps serving others", async () => {
    const h2 = await rawHttp2(coordinator.port);
    await until(() => h2.frames.some((f) => f.type === FrameType.SETTINGS && f.flags === 0));
    // six requests whose bodies never come: ids 1, 3, ... 11
    for (let id = 1; id <= 11; id += 2)
      h2.send(frame(FrameType.HEADERS, 0x4, id, postHeaders("/iris.v1.AccountService/VerifyKey")));
    await until(() => h2.frames.some((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY));
    const refusal = h2.frames.find((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY)!;
    if (refusal.type === FrameType.RST_STREAM) {
      expect(refusal.streamId).toBeGreaterThan(7);
      expect(refusal.payload.readUInt32BE(0)).toBe(REFUSED_STREAM);
    } else {
      // a client that acknowledged the limit and still exceeds it loses the connection (GOAWAY: last stream 7 at most)
      expect(refusal.payload.readUInt32BE(0) & 0x7fffffff).toBeLessThanOrEqual(7);
    }
    const code = refusal.payload.readUInt32BE(refusal.type === FrameType.GOAWAY ? 4 : 0);
    console.log(
      `6 streams on a 4-stream ` +
        `connection: ${
          refusal.type === FrameType.RST_STREAM ? `RST_STREAM on stream ${refusal.streamId}` : "GOAWAY"
        }, error ` +
        `code ${code}`,
    );
    expect((await fetch(`${coordinator.url}/healthz`)).status).toBe(200);
    h2.socket.destroy();
  });

  async function postNeverFinished(path: string) {
    const session = http2.connect(coordinator.url);
    const started = performance.now();
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/json" });
    stream.write("{");
    let body = "";
    stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
    const status = await new Promise<number>((resolve) =>
      stream.once("response", (headers) => resolve(headers[":status"]!)),
    );
    const answeredMs = performance.now() - started;
    await new Promise((resolve) => stream.once("close", resolve));
    session.destroy();
    return { status, body, answeredMs, rstCode: stream.rstCode };
  }

  it("fails a request whose body does not arrive in time, and resets its stream", async () => {
    const rpc = await postNeverFinished("/iris.v1.AccountService/VerifyKey");
    console.log(
      `HTTP/2 body never finished: answered after ${rpc.answeredMs.toFixed(0)} ms (HTTP_REQUEST_TIMEOUT_MS 600)`,
    );
    expect(rpc.status).toBe(504); // Connect's HTTP status for deadline_exceeded
    expect(JSON.parse(rpc.body)).toEqual({
      code: "deadline_exceeded",
      message: "the request did not arrive within 600 ms",
    });
    expect(rpc.answeredMs).toBeGreaterThanOrEqual(550); // the message above says the 600 ms setting ended it
    expect(rpc.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    const plain = await postNeverFinished("/v1/chat/completions");
    expect(plain.status).toBe(408);
    expect(plain.body).toContain("the request did not arrive within 600 ms");
  });

  it("closes a session with no open stream after the idle timeout (GOAWAY)", async () => {
    const session = http2.connect(coordinator.url);
    const goaway = new Promise<number>((resolve) => session.once("goaway", () => resolve(performance.now())));
    const closed = new Promise<number>((resolve) => session.once("close", () => resolve(performance.now())));
    const stream = session.request({ ":path": "/healthz" });
    stream.resume();
    await new Promise((resolve) => stream.once("close", resolve));
    const idleFrom = performance.now();
    const goawayMs = (await goaway) - idleFrom;
    await closed;
    console.log(`HTTP/2 session idle: GOAWAY after ${goawayMs.toFixed(0)} ms (HTTP_IDLE_TIMEOUT_MS 800)`);
    expect(goawayMs).toBeGreaterThanOrEqual(750); // and not the 65 s default: the test's timeout would come first
  });

  it("closes a NodeService stream that never registers, and with it the connection's last stream", async () => {
    const session = http2.connect(coordinator.url);
    const closed = new Promise<void>((resolve) => session.once("close", resolve));
    const started = performance.now();
    const stream = session.request({
      ":method": "POST",
      ":path": "/iris.v1.NodeService/Connect",
      "content-type": "application/grpc+proto",
      te: "trailers",
    });
    stream.resume();
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
    const endedMs = performance.now() - started;
    console.log(
      `NodeService stream without register: grpc-status ${trailers["grpc-status"]} after ${endedMs.toFixed(0)} ms ` +
        `(NODE_REGISTER_TIMEOUT_MS 300)`,
    );
    expect(trailers["grpc-status"]).toBe("4"); // DEADLINE_EXCEEDED
    expect(decodeURIComponent(String(trailers["grpc-message"]))).toMatch(/no register message within 300 ms/);
    // the server let the stream go: the session falls idle and is closed
    await closed;
  });

  it("keeps an agent's stream open past the body and idle deadlines", async () => {
    const accountKey = await newAccountKey(coordinator.url);
    const node = startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId: "long-lived", heartbeats: false });
    await node.registered;
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await Promise.race([node.ended.then(() => "ended"), Promise.resolve("open")])).toBe("open");
    expect(coordinator.registry.size).toBe(1);
    node.kill();
  });
});
