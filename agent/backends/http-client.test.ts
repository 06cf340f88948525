// The agent's HTTP client against a real node:http server: kept-alive sockets reused, the one retry for a reused
// socket the server had closed (its idle timeout racing the next request), never for a fresh one, and a released
// answer's socket reused once its end arrives, closed when it does not come.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createHttpTransport } from "./http-client.ts";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
});

/** What the test server does with a request, by its number (1 for the first): anything else is answered "ok <n>". */
interface Behaviour {
  /** The connection is dropped instead. */
  resetOn?: Set<number>;
  /** "part" is written, and the answer ends only after `endAfterMs` (never when undefined). */
  hang?: Set<number>;
  endAfterMs?: number;
  /** Never answered. */
  quiet?: Set<number>;
}

async function start({ resetOn, hang, endAfterMs, quiet }: Behaviour = {}): Promise<{
  url: string;
  ports: number[];
  closed: number[];
}> {
  const ports: number[] = [];
  const closed: number[] = [];
  server = createServer((req, res) => {
    const port = req.socket.remotePort!;
    if (!ports.includes(port)) req.socket.once("close", () => closed.push(port));
    ports.push(port);
    if (resetOn?.has(ports.length)) {
      req.socket.destroy();
      return;
    }
    if (quiet?.has(ports.length)) return;
    if (hang?.has(ports.length)) {
      res.write("part");
      if (endAfterMs !== undefined) setTimeout(() => res.end(" end"), endAfterMs);
      return;
    }
    res.end(`ok ${ports.length}`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/x`, ports, closed };
}

describe("the agent's HTTP client", () => {
  it("reuses one kept-alive socket for requests one after another", async () => {
    const { url, ports } = await start();
    const http = createHttpTransport();
    for (let i = 1; i <= 3; i++) expect(await (await http(url, { body: "{}" })).text()).toBe(`ok ${i}`);
    expect(new Set(ports).size).toBe(1);
    http.close();
  });

  it("sends a request again, once, on a new socket when the reused one was closed under it", async () => {
    const { url, ports } = await start({ resetOn: new Set([2]) });
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
    const fresh = await start({ resetOn: new Set([1]) });
    const http = createHttpTransport();
    await expect(http(fresh.url, { body: "{}" })).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
    expect(fresh.ports).toHaveLength(1);
    http.close();
    server!.close();

    const twice = await start({ resetOn: new Set([2, 3]) });
    const again = createHttpTransport();
    expect(await (await again(twice.url, { body: "{}" })).text()).toBe("ok 1");
    await expect(again(twice.url, { body: "{}" })).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
    expect(twice.ports).toHaveLength(3);
    again.close();
  });

  it("reuses a released answer's socket once its end arrives", async () => {
    const { url, ports, closed } = await start({ hang: new Set([1]), endAfterMs: 50 });
    const http = createHttpTransport();
    const answer = await http(url, { body: "{}" });
    for await (const part of answer.body) {
      expect(part.toString()).toBe("part");
      break;
    }
    answer.release();
    await new Promise((resolve) => setTimeout(resolve, 150)); // the end came 50 ms after the part
    expect(await (await http(url, { body: "{}" })).text()).toBe("ok 2");
    expect(ports[1]).toBe(ports[0]);
    expect(closed).toEqual([]);
    http.close();
  });

  it("closes a released answer's socket when its end does not come within a second", async () => {
    const { url, ports, closed } = await start({ hang: new Set([1]) });
    const http = createHttpTransport();
    const answer = await http(url, { body: "{}" });
    answer.release();
    await vi.waitFor(() => expect(closed).toEqual([ports[0]]), { timeout: 3_000 });
    expect(await (await http(url, { body: "{}" })).text()).toBe("ok 2");
    expect(ports[1]).not.toBe(ports[0]);
    http.close();
  });

  it("rejects with the signal's reason when aborted before the answer, and closes that socket", async () => {
    const { url, ports, closed } = await start({ quiet: new Set([2]) });
    const http = createHttpTransport();
    expect(await (await http(url, { body: "{}" })).text()).toBe("ok 1");
    const controller = new AbortController();
    const reason = new Error("cancelled by the test");
    const call = http(url, { body: "{}", signal: controller.signal });
    await vi.waitFor(() => expect(ports).toHaveLength(2));
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
    await vi.waitFor(() => expect(closed).toEqual([ports[0]]), { timeout: 3_000 });
    http.close();
  });
});
