// The web pages' HTTP face: content types, caching, the CSP, no way out of the assets folder, a clear 503 unbuilt.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY, registerPages } from "./pages.ts";

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function serve(dir: string): Promise<FastifyInstance> {
  app = Fastify();
  registerPages(app, { dir });
  await app.ready();
  return app;
}

function builtDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "iris-pages-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "chat.html"), "<!doctype html><title>chat</title>");
  writeFileSync(join(dir, "dashboard.html"), "<!doctype html><title>dashboard</title>");
  writeFileSync(join(dir, "assets", "chat-ABC123.js"), "console.log(1)");
  writeFileSync(join(dir, "assets", "chat-ABC123.js.gz"), gzipSync("console.log(1)"));
  writeFileSync(join(dir, "assets", "chat-ABC123.css"), "body{}");
  writeFileSync(join(dir, "secret.txt"), "not an asset");
  return dir;
}

describe("web pages", () => {
  it("serves /chat and /dashboard as HTML under a strict CSP, revalidated on every load", async () => {
    const server = await serve(builtDir());
    for (const [path, title] of [
      ["/chat", "chat"],
      ["/dashboard", "dashboard"],
    ]) {
      const res = await server.inject({ url: path });
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(res.body).toContain(`<title>${title}</title>`);
      expect(res.headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers["cache-control"]).toBe("no-cache");
    }
    const csp = CONTENT_SECURITY_POLICY.split("; ");
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe");
  });

  it("redirects / to /chat", async () => {
    const res = await (await serve(builtDir())).inject({ url: "/" });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe("/chat");
  });

  it("serves hashed assets with their content type, cached for good", async () => {
    const server = await serve(builtDir());
    const js = await server.inject({ url: "/assets/chat-ABC123.js" });
    expect(js.statusCode).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(js.headers["x-content-type-options"]).toBe("nosniff");
    expect(js.body).toBe("console.log(1)");
    const css = await server.inject({ url: "/assets/chat-ABC123.css" });
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
  });

  it("sends the gzip twin to browsers that accept it, and the plain file to the rest", async () => {
    const server = await serve(builtDir());
    const zipped = await server.inject({
      url: "/assets/chat-ABC123.js",
      headers: { "accept-encoding": "gzip, deflate, br" },
    });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(zipped.headers.vary).toBe("accept-encoding");
    expect(gunzipSync(zipped.rawPayload).toString()).toBe("console.log(1)");
    // no twin for this one: plain, whatever the browser accepts
    const css = await server.inject({ url: "/assets/chat-ABC123.css", headers: { "accept-encoding": "gzip" } });
    expect(css.headers["content-encoding"]).toBeUndefined();
    expect(css.body).toBe("body{}");
    expect((await server.inject({ url: "/assets/chat-ABC123.js.gz" })).statusCode).toBe(404);
  });

  it("never serves anything outside the assets folder, however the path is spelled", async () => {
    const server = await serve(builtDir());
    for (const url of [
      "/assets/../secret.txt",
      "/assets/..%2fsecret.txt",
      "/assets/..%2Fchat.html",
      "/assets/%2e%2e%2fsecret.txt",
      "/assets/..%5csecret.txt",
      "/assets/%2e%2e/secret.txt",
      "/assets/....//secret.txt",
      "/assets/.%2e/.%2e/package.json",
      "/assets/chat.html",
      "/assets/",
      "/assets/missing-XYZ.js",
      "/assets/chat-ABC123.js%00.png",
    ]) {
      const res = await server.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.body, url).not.toContain("not an asset");
      expect(res.body, url).not.toContain("<title>");
    }
  });

  it("answers 503 with the command to run when the pages have not been built", async () => {
    const server = await serve(join(tmpdir(), "iris-pages-never-built"));
    const res = await server.inject({ url: "/chat" });
    expect(res.statusCode).toBe(503);
    expect(res.body).toContain("run npm run build");
    expect(res.headers["cache-control"]).toBe("no-store");
    expect((await server.inject({ url: "/assets/chat-ABC123.js" })).statusCode).toBe(404);
  });
});
