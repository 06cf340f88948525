// Puts the agent screen on the terminal (alternate screen, like htop) and takes it down again.
import { render } from "ink";
import type { AgentState } from "../agent/state.ts";
import { AgentApp, type AgentActions } from "./agent-app.tsx";

export interface ShownScreen {
  /** Draws the last state, restores the terminal's own screen. */
  close(): Promise<void>;
}

export function showAgentScreen(
  state: AgentState,
  actions: AgentActions,
  options: { logFile?: string } = {},
): ShownScreen {
  const instance = render(<AgentApp state={state} actions={actions} logFile={options.logFile} />, {
    exitOnCtrlC: false, // Ctrl+C is a graceful quit, handled by AgentApp
    patchConsole: true, // a stray console.log lands above the frame instead of through it
    alternateScreen: true,
    // the caller decided on a TTY; a CI variable in the environment must not turn the screen into a final dump
    interactive: true,
    // only changed lines are rewritten: no flicker at 10 redraws a second
    incrementalRendering: true,
  });
  return {
    async close() {
      state.flush();
      await instance.waitUntilRenderFlush();
      instance.unmount();
      await instance.waitUntilExit().catch(() => {});
    },
  };
}

/**
 * While the screen is shown, whatever would reach stderr (a dependency's warning, Node's own warnings) goes to
 * `sink` instead of scribbling over the frame. Returns the undo.
 */
export function divertStderr(sink: (text: string) => void): () => void {
  const original = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    sink(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    const callback = rest.find((arg) => typeof arg === "function") as ((err?: Error | null) => void) | undefined;
    callback?.();
    return true;
  }) as typeof process.stderr.write;
  return () => {
    process.stderr.write = original;
  };
}
