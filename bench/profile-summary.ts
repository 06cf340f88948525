// Reads a V8 .cpuprofile and says where the time went: self time by category (protobuf, protovalidate,
// connect-es, HTTP/2, our code, GC, ...), the share of samples each category appears in, and the top functions.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { markdownTable } from "./stats.ts";

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const root = fileURLToPath(new URL("..", import.meta.url));

// First match wins: validation before protobuf (protovalidate calls into protobuf's reflection).
const rules: [category: string, test: (url: string) => boolean][] = [
  [
    "protovalidate (validation interceptor)",
    (u) => /node_modules\/(@bufbuild\/protovalidate|@bufbuild\/cel|@connectrpc\/validate)\//.test(u),
  ],
  ["protobuf encode/decode (@bufbuild/protobuf)", (u) => u.includes("node_modules/@bufbuild/protobuf/")],
  ["connect-es (RPC protocol, envelopes, streams)", (u) => u.includes("node_modules/@connectrpc/")],
  ["HTTP/2 (node:http2)", (u) => u.startsWith("node:internal/http2") || u === "node:http2"],
  // coordinator/single-port.ts hands HTTP/1.1 and h2c the native socket; the TLS port's plaintext-h2 case still
  // goes through a JS Duplex (ReplaySocket) and JSStreamSocket: counted apart, a cost of sharing one port
  [
    "one-port socket bridge (ReplaySocket, JSStreamSocket)",
    (u) => u === "node:internal/js_stream_socket" || u.endsWith("/coordinator/single-port.ts"),
  ],
  [
    "sockets & streams (node:net, node:stream)",
    (u) => /^node:(internal\/)?(streams?|net|stream_base_commons)/.test(u) || u.startsWith("node:internal/streams"),
  ],
  [
    "event loop: microtasks, timers, events",
    (u) => /^node:(internal\/process\/task_queues|internal\/timers|timers|events|internal\/async_hooks)/.test(u),
  ],
  [
    "payload crypto (AES-256-GCM envelopes: node:crypto, common/crypto)",
    (u) => u.startsWith("node:internal/crypto/") || u === "node:crypto" || u.includes(`${root}common/crypto/`),
  ],
  ["Fastify", (u) => /node_modules\/(fastify|avvio|find-my-way|@fastify)\//.test(u)],
  [
    "pino logging",
    (u) =>
      /node_modules\/(pino|sonic-boom|fast-redact|@pinojs)/.test(u) || u.includes("node_modules/pino-std-serializers"),
  ],
  [
    "database (kysely, pg, PGlite incl. its WASM)",
    (u) =>
      /node_modules\/(kysely|pg|pg-protocol|pg-pool|pg-types|@electric-sql|kysely-pglite-dialect)\//.test(u) ||
      u.startsWith("wasm://"),
  ],
  ["Iris code (coordinator/, common/)", (u) => u.includes(`${root}coordinator/`) || u.includes(`${root}common/`)],
  ["Iris generated code (gen/)", (u) => u.includes(`${root}gen/`) || u.includes("/gen/iris/")],
  ["other Node.js internals", (u) => u.startsWith("node:")],
];

// Native functions (no script URL) by name: socket I/O bindings, HTTP/2 bindings, the microtask queue.
const socketIo = "native socket I/O (writev and other socket bindings)";
const bridge = "one-port socket bridge (ReplaySocket, JSStreamSocket)";
const nativeCategories: Record<string, string> = {
  writev: socketIo,
  writeBuffer: socketIo,
  writeString: socketIo,
  writeUtf8String: socketIo,
  writeLatin1String: socketIo,
  writeAsciiString: socketIo,
  // JSStreamWrap's bindings: the bridge feeding bytes into nghttp2 and acknowledging its writes
  readBuffer: bridge,
  finishWrite: bridge,
  readStart: socketIo,
  readStop: socketIo,
  shutdown: socketIo,
  CipherBase: "payload crypto (AES-256-GCM envelopes: node:crypto, common/crypto)",
  respond: "HTTP/2 (node:http2)",
  trailers: "HTTP/2 (node:http2)",
  runMicrotasks: "event loop: microtasks, timers, events",
};

function categoryOf(frame: ProfileNode["callFrame"]): string {
  const name = frame.functionName;
  if (name === "(garbage collector)") return "GC (garbage collector)";
  if (name === "(idle)") return "(idle)";
  if (name === "(program)") return "V8/native, unattributed (program)";
  if (name === "(root)") return "(root)";
  const url = frame.url;
  if (url === "") return nativeCategories[name] ?? "V8 builtins & other native calls";
  for (const [category, test] of rules) if (test(url)) return category;
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  return pkg ? `other package: ${pkg}` : "other";
}

function where(frame: ProfileNode["callFrame"]): string {
  if (!frame.url) return "native";
  const path = frame.url
    .replace(/^file:\/\//, "")
    .replace(root, "")
    .replace(/^.*node_modules\//, "");
  return `${path}:${frame.lineNumber + 1}`;
}

export interface ProfileSummary {
  markdown: string;
  busyMs: number;
  wallMs: number;
  categories: { category: string; selfMs: number; inclusiveMs: number }[];
}

export function summariseProfile(file: string, topN = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  // a sample lasts until the next one (Chrome DevTools' convention); the last one until endTime
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  const stamps = profile.timeDeltas.map((delta) => (t += delta));
  for (let i = 0; i < profile.samples.length; i++) {
    const duration = (i + 1 < stamps.length ? stamps[i + 1]! : profile.endTime) - stamps[i]!;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, duration));
  }

  const categoriesOnPath = new Map<number, Set<string>>();
  const pathCategories = (id: number): Set<string> => {
    const known = categoriesOnPath.get(id);
    if (known) return known;
    const up = parent.get(id);
    const set = new Set(up === undefined ? [] : pathCategories(up));
    set.add(categoryOf(byId.get(id)!.callFrame));
    categoriesOnPath.set(id, set);
    return set;
  };

  const selfByCategory = new Map<string, number>();
  const inclusiveByCategory = new Map<string, number>();
  const byFunction = new Map<string, { frame: ProfileNode["callFrame"]; us: number }>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const category = categoryOf(frame);
    totalUs += us;
    if (category === "(idle)") {
      idleUs += us;
      continue;
    }
    selfByCategory.set(category, (selfByCategory.get(category) ?? 0) + us);
    for (const onPath of pathCategories(id))
      inclusiveByCategory.set(onPath, (inclusiveByCategory.get(onPath) ?? 0) + us);
    const key = `${frame.functionName}|${frame.url}|${frame.lineNumber}|${frame.columnNumber}`;
    const entry = byFunction.get(key) ?? { frame, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => `${((100 * us) / busyUs).toFixed(1)}%`;
  const ms = (us: number) => (us / 1000).toFixed(0);

  const categories = [...selfByCategory]
    .map(([category, us]) => ({
      category,
      selfMs: us / 1000,
      inclusiveMs: (inclusiveByCategory.get(category) ?? 0) / 1000,
    }))
    .sort((a, b) => b.selfMs - a.selfMs);
  const categoryTable = markdownTable(
    ["category", "self ms", "self % of busy", "on stack % of busy"],
    categories.map((c) => [c.category, ms(c.selfMs * 1000), pct(c.selfMs * 1000), pct(c.inclusiveMs * 1000)]),
  );
  const top = [...byFunction.values()].sort((a, b) => b.us - a.us).slice(0, topN);
  const functionTable = markdownTable(
    ["#", "function", "where", "category", "self ms", "% of busy"],
    top.map((f, i) => [
      String(i + 1),
      `\`${f.frame.functionName || "(anonymous)"}\``,
      where(f.frame),
      categoryOf(f.frame),
      ms(f.us),
      pct(f.us),
    ]),
    ["r", "l", "l", "l", "r", "r"],
  );
  const wallMs = (profile.endTime - profile.startTime) / 1000;
  const header =
    `profile: ${(wallMs / 1000).toFixed(1)} s of wall time, ${profile.samples.length} samples; the main thread had ` +
    `work (was not idle in the event loop) ${((100 * busyUs) / totalUs).toFixed(0)}% of the time. Samples are taken ` +
    `in wall time, so on a shared machine "busy" includes waiting for a core; the shares are still the split of the ` +
    `work. GC helper threads are not sampled.`;
  return {
    markdown: `${header}\n\n${categoryTable}\n\nTop ${topN} functions by self time:\n\n${functionTable}`,
    busyMs: busyUs / 1000,
    wallMs,
    categories,
  };
}

// `tsx bench/profile-summary.ts file.cpuprofile` summarises a saved profile
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2]) {
  console.log(summariseProfile(process.argv[2]).markdown);
}
