// The one HTTP client of the peers benchmark: node:http with a keep-alive pool per target, the same code for
// direct, Portkey and Iris, so that no target is measured through a different client. It checks every answer
// (status, the whole text, [DONE] or usage) and times it: the first content delta (TTFT) and the end.
import { Agent, request } from "node:http";
import { UPSTREAM_TEXT } from "./peers-upstream.ts";

export interface Target {
  name: string;
  /** http://127.0.0.1:PORT/v1/chat/completions or the like */
  url: URL;
  headers: Record<string, string>;
  /** One pool per target, as many sockets as the highest concurrency. */
  agent: Agent;
}

export interface Timing {
  /** ms from sending to the first content delta (streamed), or to the whole answer (not streamed) */
  ttftMs: number;
  totalMs: number;
  /** 'data' events the response arrived in: about how many separate writes the server's answer took */
  reads: number;
}

export function createTarget(name: string, url: string, headers: Record<string, string>, maxSockets: number): Target {
  // Idle sockets are dropped after 4 s, before any server's own keep-alive timeout (Node's default is 5 s), so that
  // a request never goes out on a socket the server is closing; each phase starts with unmeasured requests instead.
  const agent = new Agent({
    keepAlive: true,
    maxSockets,
    maxFreeSockets: maxSockets,
    timeout: 4_000,
    scheduling: "lifo",
  });
  return { name, url: new URL(url), headers, agent };
}

const bodies = {
  streamed: Buffer.from(
    JSON.stringify({
      model: "auto",
      stream: true,
      max_tokens: 16,
      messages: [{ role: "user", content: "Hello there" }],
    }),
  ),
  whole: Buffer.from(
    JSON.stringify({ model: "auto", max_tokens: 16, messages: [{ role: "user", content: "Hello there" }] }),
  ),
};

interface ChunkJson {
  choices?: { delta?: { content?: string | null } }[];
  error?: unknown;
}

interface CompletionJson {
  choices?: { message?: { content?: string | null } }[];
  usage?: { completion_tokens?: number };
}

/** One chat completion; rejects on any status but 200, an error event, or an answer other than the upstream's. */
export function chat(target: Target, streamed: boolean): Promise<Timing> {
  const body = streamed ? bodies.streamed : bodies.whole;
  return new Promise<Timing>((resolve, reject) => {
    const started = performance.now();
    let first: number | undefined;
    const req = request(
      {
        agent: target.agent,
        host: target.url.hostname,
        port: target.url.port,
        path: target.url.pathname,
        method: "POST",
        headers: { ...target.headers, "content-type": "application/json", "content-length": body.length },
      },
      (res) => {
        res.setEncoding("utf8");
        let buffered = "";
        let text = "";
        let done = false;
        let failure: Error | undefined;
        let reads = 0;
        const fail = (message: string) => (failure ??= new Error(`${target.name}: ${message}`));
        if (res.statusCode !== 200) fail(`HTTP ${res.statusCode}`);
        res.on("data", (data: string) => {
          reads++;
          buffered += data;
          if (!streamed || failure) return;
          // SSE: events end with a blank line; each of these has one `data:` line
          let end: number;
          while ((end = buffered.indexOf("\n\n")) >= 0) {
            const event = buffered.slice(0, end).replace(/\r/g, "");
            buffered = buffered.slice(end + 2);
            for (const line of event.split("\n")) {
              if (!line.startsWith("data:")) continue;
              const data = line.slice(5).trim();
              if (data === "[DONE]") {
                done = true;
                continue;
              }
              let json: ChunkJson;
              try {
                json = JSON.parse(data) as ChunkJson;
              } catch {
                fail(`unreadable event ${data.slice(0, 300)}`);
                return;
              }
              if (json.error !== undefined) fail(`error event ${data.slice(0, 300)}`);
              const content = json.choices?.[0]?.delta?.content;
              if (content) {
                first ??= performance.now();
                text += content;
              }
            }
          }
        });
        res.on("error", reject);
        res.on("end", () => {
          const end = performance.now();
          if (!failure && !streamed) {
            try {
              const json = JSON.parse(buffered) as CompletionJson;
              text = json.choices?.[0]?.message?.content ?? "";
              done = typeof json.usage?.completion_tokens === "number";
              first = end;
            } catch {
              fail("the answer is not JSON");
            }
          }
          if (!failure && text !== UPSTREAM_TEXT)
            fail(`answer ${JSON.stringify(text.slice(0, 120))} is not the upstream's`);
          if (!failure && !done) fail(streamed ? "the stream ended without [DONE]" : "the answer has no usage");
          if (failure) reject(new Error(`${failure.message}${streamed ? "" : `: ${buffered.slice(0, 300)}`}`));
          else resolve({ ttftMs: first! - started, totalMs: end - started, reads });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export interface RunResult {
  timings: Timing[];
  errors: number;
  firstError?: string;
  wallMs: number;
}

/** `requests` requests by `concurrency` loops, each running its share one after another (closed loop). */
export async function runClosedLoop(
  target: Target,
  streamed: boolean,
  concurrency: number,
  requests: number,
): Promise<RunResult> {
  const result: RunResult = { timings: [], errors: 0, wallMs: 0 };
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, requests) }, async () => {
      while (started++ < requests) {
        try {
          result.timings.push(await chat(target, streamed));
        } catch (err) {
          result.errors++;
          result.firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    }),
  );
  result.wallMs = performance.now() - t0;
  return result;
}
