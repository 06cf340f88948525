// The agent's HTTP client against a real node:http server: kept-alive sockets reused, and the one retry for a reused
// socket the server had closed (its idle timeout racing the next request), never for a fresh one.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createHttpTransport } from "./http-client.ts";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
});

/** A server that answers "ok <n>" and, for the request numbers in `resetOn`, drops the connection instead. */
async function start(resetOn: Set<number>): Promise<{ url: string; ports: number[] }> {
  const ports: number[] = [];
  server = createServer((req, res) => {
    ports.push(req.socket.remotePort!);
    if (resetOn.has(ports.length)) {
      req.socket.destroy();
      return;
    }
    res.end(`ok ${ports.length}`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/x`, ports };
}

describe("the agent's HTTP client", () => {
  it("reuses one kept-alive socket for requests one after another", async () => {
    const { url, ports } = await start(new Set());
    const http = createHttpTransport();
    for (let i = 1; i <= 3; i++) expect(await (await http(url, { body: "{}" })).text()).toBe(`ok ${i}`);
    expect(new Set(ports).size).toBe(1);
    http.close();
  });

  it("sends a request again, once, on a new socket when the reused one was closed under it", async () => {
    const { url, ports } = await start(new Set([2]));
    const http = createHttpTransport();
    expect(await (await http(url, { body: "{}" })).text()).toBe("ok 1");
    // the second request goes out on the first one's socket, which the server drops: the client retries
    expect(await (await http(url, { body: "{}" })).text()).toBe("ok 3");
    expect(ports).toHaveLength(3);
    expect(ports[1]).toBe(ports[0]);
    expect(ports[2]).not.toBe(ports[0]);
    http.close();
  });

  it("does not retry a request on a fresh socket, nor a second time", async () => {
    const fresh = await start(new Set([1]));
    const http = createHttpTransport();
    await expect(http(fresh.url, { body: "{}" })).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(fresh.ports).toHaveLength(1);
    http.close();
    server!.close();

    const twice = await start(new Set([2, 3]));
    const again = createHttpTransport();
    expect(await (await again(twice.url, { body: "{}" })).text()).toBe("ok 1");
    await expect(again(twice.url, { body: "{}" })).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(twice.ports).toHaveLength(3);
    again.close();
  });
});
