// Serves the built web pages (dist/web: /chat, /dashboard, /assets/*) with strict security and caching headers.
import { readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";

/** Where `npm run build` (scripts/build-web.ts) puts the pages. */
const DEFAULT_WEB_DIR = fileURLToPath(new URL("../../dist/web", import.meta.url));

/**
 * No inline script or style anywhere, and only this origin: if model output ever slipped past the chat page's
 * sanitizer as HTML, the browser would still refuse to run or load what it names.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const contentTypes: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

// Built asset names are flat and content-hashed (chat-ZQJKI3GA.js): anything else, `..` and `/` included, is not one.
const assetName = /^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9]+)+$/;

const PAGES = { "/chat": "chat.html", "/dashboard": "dashboard.html" } as const;

function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header("content-security-policy", CONTENT_SECURITY_POLICY)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("x-frame-options", "DENY")
    .header("cross-origin-opener-policy", "same-origin");
}

function notFound(reply: FastifyReply): FastifyReply {
  return reply.code(404).type("text/plain; charset=utf-8").header("cache-control", "no-store").send("Not found\n");
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "EISDIR")
      return undefined;
    throw err;
  }
}

/** Registers GET /, /chat, /dashboard and /assets/:name. Files are read per request, so a rebuild shows at once. */
export function registerPages(app: FastifyInstance, options: { dir?: string } = {}): void {
  const dir = options.dir ?? DEFAULT_WEB_DIR;

  app.get("/", async (_req, reply) => reply.redirect("/chat", 302));

  for (const [path, file] of Object.entries(PAGES)) {
    app.get(path, async (_req, reply) => {
      const html = await readIfExists(join(dir, file));
      secure(reply);
      if (!html) {
        return reply
          .code(503)
          .type("text/plain; charset=utf-8")
          .header("cache-control", "no-store")
          .send(`The ${path} page has not been built: run npm run build (it writes dist/web/), then reload.\n`);
      }
      // the page names hashed assets: it must be revalidated so a new build reaches browsers
      return reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(html);
    });
  }

  app.get<{ Params: { name: string } }>("/assets/:name", async (req, reply) => {
    const { name } = req.params;
    const type = contentTypes[extname(name)];
    secure(reply);
    if (!assetName.test(name) || !type) return notFound(reply);
    const path = join(dir, "assets", name);
    // the build writes a .gz twin of each script and stylesheet; caches must keep the two apart
    const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))
      ? await readIfExists(`${path}.gz`)
      : undefined;
    const body = gzip ?? (await readIfExists(path));
    if (!body) return notFound(reply);
    if (gzip) reply.header("content-encoding", "gzip");
    // the name changes with the content, so a browser may keep it for good
    return reply
      .type(type)
      .header("vary", "accept-encoding")
      .header("cache-control", "public, max-age=31536000, immutable")
      .send(body);
  });
}
