// The agent screen's one-line panels: title, connection state, tier, model, totals, key bar (GPU and CPU: meters.tsx).
import { Text } from "ink";
import type { ReactNode } from "react";
import type { AgentSnapshot } from "../agent/snapshot.ts";
import { count, duration, fit, padEnd, parameters, rate } from "./format.ts";

/** The label column every panel line starts with. */
export const LABEL_WIDTH = 9;

/** One screen line: never wraps, cut at the screen's edge. */
export function Line({ children }: { children: ReactNode }) {
  return <Text wrap="truncate-end">{children}</Text>;
}

/** A panel line's label, in the label column. */
export function Label({ children }: { children: string }) {
  return (
    <Text color="cyan" bold>
      {padEnd(` ${children}`, LABEL_WIDTH)}
    </Text>
  );
}

const Sep = () => <Text dimColor> · </Text>;

export function TitleLine({ s, width }: { s: AgentSnapshot; width: number }) {
  const left = ` iris-agent ${s.version}  node ${s.nodeId}  account ${s.accountKeyMasked}`;
  const right = `coordinator ${s.coordinatorUrl} `;
  const gap = width - [...left].length - [...right].length;
  return (
    <Line>
      <Text bold> iris-agent</Text>
      <Text dimColor>{` ${s.version}  node `}</Text>
      <Text bold>{s.nodeId}</Text>
      <Text dimColor>{"  account "}</Text>
      <Text>{s.accountKeyMasked}</Text>
      {gap >= 2 ? <Text dimColor>{" ".repeat(gap) + right}</Text> : null}
    </Line>
  );
}

export function StateLine({ s, now }: { s: AgentSnapshot; now: number }) {
  const c = s.connection;
  let state: ReactNode;
  if (c.kind === "starting")
    state = (
      <>
        <Text color="yellow">◌ starting</Text>
        <Sep />
        <Text>{s.stage || "…"}</Text>
      </>
    );
  else if (c.kind === "connecting")
    state = (
      <>
        <Text color="yellow">◌ connecting</Text>
        {c.attempt > 0 ? <Text dimColor> (attempt {c.attempt + 1})</Text> : null}
      </>
    );
  else if (c.kind === "registered")
    state = (
      <>
        <Text color="green" bold>
          ● registered
        </Text>
        <Text dimColor> for </Text>
        <Text>{duration(now - c.since)}</Text>
      </>
    );
  else if (c.kind === "reconnecting") {
    const left = Math.max(0, Math.ceil((c.at - now) / 1000));
    state = (
      <>
        <Text color="yellow" bold>
          ◌ reconnecting in {left} s
        </Text>
        <Sep />
        <Text color="red">{c.error}</Text>
      </>
    );
  } else if (c.kind === "refused")
    state = (
      <>
        <Text color="red" bold>
          ✖ refused
        </Text>
        <Sep />
        <Text color="red">{c.error}</Text>
      </>
    );
  else if (c.kind === "tls")
    state = (
      <>
        <Text color="red" bold>
          ✖ TLS
        </Text>
        <Sep />
        <Text color="red">{c.error}</Text>
      </>
    );
  else state = <Text dimColor>■ stopped</Text>;
  return (
    <Line>
      <Label>State</Label>
      {s.quitting ? (
        <QuitBadge s={s} now={now} />
      ) : s.paused ? (
        <Text backgroundColor="yellow" color="black" bold>
          {" "}
          PAUSED{" "}
        </Text>
      ) : null}
      {s.quitting || s.paused ? <Text> </Text> : null}
      {state}
      {s.reputation !== undefined ? (
        <>
          <Sep />
          <Text dimColor>reputation </Text>
          <Text bold>{s.reputation.toFixed(1)}</Text>
        </>
      ) : null}
      {s.earnings ? (
        <>
          <Sep />
          <Text dimColor>{s.earnings.month} so far ≈ </Text>
          <Text bold color="green">
            {s.earnings.units.toLocaleString("en-US")}
          </Text>
          <Text dimColor> units</Text>
        </>
      ) : null}
    </Line>
  );
}

function QuitBadge({ s, now }: { s: AgentSnapshot; now: number }) {
  const running = s.tasks.length;
  const left = Math.max(0, Math.ceil((s.quitting!.deadline - now) / 1000));
  const text =
    running === 0
      ? " QUITTING "
      : ` QUITTING: ${running} task${running === 1 ? "" : "s"} running, hand back in ${left} s `;
  return (
    <Text backgroundColor="magenta" color="white" bold>
      {text}
    </Text>
  );
}

const tierColors: Record<string, string> = { BASIC: "blue", MID: "cyan", PRO: "magenta" };

export function TierLine({ s }: { s: AgentSnapshot }) {
  return (
    <Line>
      <Label>Tier</Label>
      {s.tier ? (
        <>
          <Text color={tierColors[s.tier.name] ?? "white"} bold>
            {s.tier.name}
          </Text>
          <Text dimColor>{`  ${s.tier.reason}`}</Text>
        </>
      ) : (
        <Text dimColor>— computed by the coordinator at registration</Text>
      )}
    </Line>
  );
}

export function ModelLine({ s }: { s: AgentSnapshot }) {
  const m = s.model;
  return (
    <Line>
      <Label>Model</Label>
      {m ? (
        <>
          <Text bold>{m.name}</Text>
          <Sep />
          <Text>{parameters(m.parameterCount)} params</Text>
          {m.quantization ? (
            <>
              <Sep />
              <Text>{m.quantization}</Text>
            </>
          ) : null}
          {m.contextLength ? (
            <>
              <Sep />
              <Text>ctx {count(m.contextLength)}</Text>
            </>
          ) : null}
        </>
      ) : (
        <Text dimColor>loading…</Text>
      )}
      <Sep />
      <Text dimColor>backend </Text>
      <Text>{s.backend}</Text>
      <Sep />
      <Text dimColor>bench </Text>
      {s.benchmarkTokensPerSecond !== undefined ? (
        <Text bold>{rate(s.benchmarkTokensPerSecond)} tok/s</Text>
      ) : (
        <Text dimColor>pending</Text>
      )}
    </Line>
  );
}

export function TotalsLine({ s }: { s: AgentSnapshot }) {
  const t = s.totals;
  const item = (label: string, n: number, color: string, always = false) =>
    n > 0 || always ? (
      <Text key={label}>
        <Text color={n > 0 ? color : undefined} bold={n > 0}>
          {count(n)}
        </Text>
        <Text dimColor>{` ${label}  `}</Text>
      </Text>
    ) : null;
  return (
    <Line>
      <Label>Totals</Label>
      {item("completed", t.completed, "green", true)}
      {item("failed", t.failed, "red", true)}
      {item("cancelled", t.cancelled, "yellow")}
      {item("handed back", t.handedBack, "magenta")}
      {item("refused", t.refused, "yellow")}
      {item("tokens", t.tokens, "white", true)}
    </Line>
  );
}

/** htop's key bar: the key plain, its action on cyan, the rest of the line cyan. */
export function KeyBar({ s, width, logFile }: { s: AgentSnapshot; width: number; logFile?: string }) {
  const keys: [string, string][] = s.quitting
    ? [["q", "Hand back now"]]
    : [
        ["q", "Quit"],
        ["p", s.paused ? "Resume" : "Pause"],
      ];
  const used = keys.reduce((n, [k, a]) => n + k.length + a.length + 3, 0);
  const tail = logFile ? fit(`log ${logFile} `, Math.max(0, width - used)) : "";
  return (
    <Line>
      {keys.map(([key, action]) => (
        <Text key={key}>
          <Text bold>{` ${key} `}</Text>
          <Text backgroundColor="cyan" color="black">{`${action} `}</Text>
        </Text>
      ))}
      <Text backgroundColor="cyan" color="black">
        {" ".repeat(Math.max(0, width - used - [...tail].length)) + tail}
      </Text>
    </Line>
  );
}
