// Preloaded (`--import`) into the server processes of the peers benchmark's trace (bench/peers-trace.ts): stamps
// each I/O step of a request with CLOCK_MONOTONIC (process.hrtime, one clock for every process on the machine) so
// that the steps of one request can be laid end to end across processes. Iris's code is unchanged: the stamps come
// from Node's and undici's diagnostics channels and from wrapping a few prototype methods of node:http and
// node:http2. Each stamp also carries how long the process's main thread has so far waited, runnable, for a core
// (run_delay in /proc/thread-self/schedstat, which Linux updates each time the thread is put on a core; one pread),
// so that a step's wall time splits into the time the thread waited for a core and the rest. At SIGUSR2 it writes
// <PEERS_TRACE_FILE> (JSON: [step, ns, run delay ns][]) and forgets what it wrote. The trace's client reads its own
// delay with runDelayNs (it stamps nothing: PEERS_TRACE_FILE is set only for the servers).
import { subscribe } from "node:diagnostics_channel";
import { openSync, readSync, writeFileSync } from "node:fs";
import { ClientRequest, IncomingMessage, ServerResponse } from "node:http";
import type { Http2Stream } from "node:http2";

const file = process.env.PEERS_TRACE_FILE;
const MAX_EVENTS = 500_000;
let events: [string, string, number][] = [];
// opened by the main thread, so it stays that thread's file (where Linux has it; else the delays read 0)
let schedstat: number | undefined;
try {
  schedstat = openSync("/proc/thread-self/schedstat", "r");
} catch {}
const line = Buffer.alloc(128);

let lastDelayNs = 0;

/**
 * Nanoseconds the main thread has waited on a run queue so far: schedstat's second field (the last value read should
 * a read fail: a stamp runs inside the server's own writes, which must not throw for it).
 */
export function runDelayNs(): number {
  if (schedstat === undefined) return 0;
  try {
    const n = readSync(schedstat, line, 0, line.length, 0);
    const delay = Number(line.toString("latin1", 0, n).split(" ")[1]);
    if (Number.isFinite(delay)) lastDelayNs = delay;
  } catch {}
  return lastDelayNs;
}

function stamp(step: string): void {
  if (events.length >= MAX_EVENTS) return;
  events.push([step, process.hrtime.bigint().toString(), runDelayNs()]);
}

type Method = (this: unknown, ...args: unknown[]) => unknown;

/** Wraps `proto[name]` so that each call stamps `step` first (or `step(this, args)` when that gives a name). */
function wrap(proto: object, name: string, step: string | ((self: unknown, args: unknown[]) => string | undefined)) {
  const target = proto as Record<string, Method>;
  const original = target[name]!;
  target[name] = function (this: unknown, ...args: unknown[]) {
    const s = typeof step === "string" ? step : step(this, args);
    if (s) stamp(s);
    return original.apply(this, args);
  };
}

if (file) {
  // http/1.1: a request's headers parsed (server), the response's end, a client's request sent, each read of its
  // answer
  subscribe("http.server.request.start", () => stamp("http.in"));
  wrap(ServerResponse.prototype, "end", "http.out.end");
  wrap(ClientRequest.prototype, "end", "client.send");
  // the agent's backend client is undici's core: its request's headers (and body) written, its answer's first read
  subscribe("undici:client:sendHeaders", () => stamp("client.send"));
  subscribe("undici:request:headers", () => stamp("client.read"));
  // a client's response has `req` (its request); a server's incoming request has none
  wrap(IncomingMessage.prototype, "push", (self, args) =>
    (self as { req?: unknown }).req !== undefined && args[0] !== null ? "client.read" : undefined,
  );
  // http/2: the first stream of either side gives the shared prototype; a write handed to the session, a read
  let wrapped = false;
  const onStream = ({ stream }: { stream: Http2Stream }) => {
    if (wrapped) return;
    wrapped = true;
    const proto = Object.getPrototypeOf(Object.getPrototypeOf(stream)) as object;
    wrap(proto, "_write", "h2.write");
    wrap(proto, "_writev", "h2.write");
    wrap(proto, "push", (_self, args) => (args[0] === null ? undefined : "h2.read"));
  };
  subscribe("http2.server.stream.start", onStream as (message: unknown) => void);
  subscribe("http2.client.stream.created", onStream as (message: unknown) => void);
  process.on("SIGUSR2", () => {
    writeFileSync(file, JSON.stringify(events));
    events = [];
  });
}
