// Browser-test support: Debian's Chromium driven by playwright-core, pages that record CSP violations, screenshots.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** The flags this machine's Chromium needs: no sandbox as root, and no calls home (the network is closed). */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Content-Security-Policy violations the page reported (each would be something blocked from running or loading). */
  cspViolations(): Promise<string[]>;
  /** Uncaught exceptions and console errors. */
  errors: string[];
}

export async function openPage(browser: Browser, viewport = { width: 1000, height: 720 }): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  // injected by the test harness (CDP), not by the page: the page's own CSP forbids inline scripts
  await page.addInitScript({
    content:
      `window.__csp = [];
      document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + ` +
      `e.blockedURI));`,
  });
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  return { page, context, errors, cspViolations: () => page.evaluate("window.__csp") as Promise<string[]> };
}

/**
 * Saves a screenshot under test-results/screenshots/ (git-ignored); with IRIS_UPDATE_DOCS_SCREENSHOTS=1 also
 * as docs/<name>.png, the small copies docs/guides/web.md shows (kept out of ordinary runs so the tree stays clean).
 */
export async function screenshot(
  page: Page,
  name: string,
  options: { docs?: boolean; fullPage?: boolean } = {},
): Promise<string> {
  const dir = join(root, "test-results/screenshots");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: options.fullPage ?? false });
  if (options.docs && process.env.IRIS_UPDATE_DOCS_SCREENSHOTS === "1") {
    mkdirSync(join(root, "docs"), { recursive: true });
    await page.screenshot({ path: join(root, "docs", `${name}.png`), fullPage: options.fullPage ?? false });
  }
  return path;
}
