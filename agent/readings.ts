// Live machine readings for the terminal UI: GPUs (through detectGpus) and the host's load and memory, every few
// seconds.
import { availableParallelism, freemem, loadavg, totalmem } from "node:os";
import { detectGpus, type Gpu } from "./gpu.ts";
import type { HostReading } from "./snapshot.ts";
import type { AgentState } from "./state.ts";

const MIB = 1024 * 1024;

export function readHost(): HostReading {
  return {
    cores: availableParallelism(),
    load1: loadavg()[0] ?? 0,
    memoryUsedMb: Math.round((totalmem() - freemem()) / MIB),
    memoryTotalMb: Math.round(totalmem() / MIB),
  };
}

/**
 * Refreshes the state's readings every `intervalMs` until `signal` aborts. One probe at a time: nvidia-smi can
 * take seconds on a cold driver, and overlapping probes would only pile up.
 */
export function watchReadings(
  state: AgentState,
  intervalMs: number,
  signal: AbortSignal,
  detect: () => Promise<Gpu[]> = detectGpus,
): void {
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    const gpus = await detect();
    if (signal.aborted) return;
    state.setReadings(gpus, readHost());
    timer = setTimeout(tick, intervalMs);
    timer.unref();
  };
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  void tick();
}
