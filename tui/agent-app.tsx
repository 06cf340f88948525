// The live agent screen: follows the agent's state, the terminal's size and the clock, and turns keys into actions.
import { useInput, useStdin, useWindowSize } from "ink";
import { useEffect, useState } from "react";
import type { AgentState } from "../agent/state.ts";
import { AgentScreen } from "./agent-screen.tsx";

/** What the operator's keys do; the agent's main wires them to the connection. */
export interface AgentActions {
  togglePause(): void;
  /** First press: quit gracefully; during the quit: hand the running tasks back now. */
  quit(): void;
}

export interface AgentAppProps {
  state: AgentState;
  actions: AgentActions;
  logFile?: string;
  /** Redraws at least this often so elapsed times and countdowns move while nothing else changes. Default 1000. */
  tickMs?: number;
  now?: () => number;
}

export function AgentApp({ state, actions, logFile, tickMs = 1000, now = Date.now }: AgentAppProps) {
  // the store notifies at most ~10 times a second, so a burst of tokens is one redraw, not one per token
  const [snapshot, setSnapshot] = useState(state.snapshot);
  useEffect(() => {
    setSnapshot(state.snapshot);
    return state.subscribe(() => setSnapshot(state.snapshot));
  }, [state]);
  const [, setTick] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setTick((n) => n + 1), tickMs);
    return () => clearInterval(timer);
  }, [tickMs]);
  const { columns, rows } = useWindowSize();
  const { isRawModeSupported } = useStdin();
  useInput(
    (input, key) => {
      // raw mode swallows the terminal's SIGINT: Ctrl+C arrives here and quits like q
      if (input === "q" || (key.ctrl && input === "c")) actions.quit();
      else if (input === "p") actions.togglePause();
    },
    { isActive: isRawModeSupported },
  );
  return <AgentScreen snapshot={snapshot} width={columns} height={rows} now={now()} logFile={logFile} />;
}
