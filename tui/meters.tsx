// The agent screen's hardware panels, drawn as meters: VRAM and utilization per GPU (or why there is none), the
// CPU's load and memory.
import { Text } from "ink";
import type { Gpu } from "../agent/gpu.ts";
import type { HostReading } from "../agent/snapshot.ts";
import { levelColor, mebibytes, meter, padEnd } from "./format.ts";
import { Label, LABEL_WIDTH, Line } from "./panels.tsx";

function Meter({ name, fraction, label, width }: { name: string; fraction: number; label: string; width: number }) {
  const m = meter(fraction, label, width);
  return (
    <>
      <Text color="cyan">{name}</Text>
      <Text bold>{m.open}</Text>
      <Text color={levelColor(fraction)}>{m.bars}</Text>
      <Text>{m.rest}</Text>
      <Text bold>{m.close}</Text>
    </>
  );
}

export function GpuLine({ gpu, index, width }: { gpu: Gpu; index: number; width: number }) {
  const nameWidth = Math.max(8, Math.min(28, Math.floor(width * 0.22)));
  const rest = width - LABEL_WIDTH - nameWidth - 1;
  // two meters only when each still has room for bars beside its label; else VRAM alone
  const withUtil = rest >= 2 * 16 + 10;
  const meterWidth = withUtil ? Math.floor((rest - 10) / 2) : rest - 5;
  const vram = gpu.vramTotalMb > 0 ? gpu.vramUsedMb / gpu.vramTotalMb : 0;
  return (
    <Line>
      <Label>{`GPU${index}`}</Label>
      <Text bold>{padEnd(gpu.name, nameWidth)} </Text>
      <Meter
        name="VRAM"
        fraction={vram}
        label={`${mebibytes(gpu.vramUsedMb)}/${mebibytes(gpu.vramTotalMb)}`}
        width={meterWidth}
      />
      {withUtil ? (
        <Meter
          name=" UTIL"
          fraction={gpu.utilizationPercent / 100}
          label={`${Math.round(gpu.utilizationPercent)}%`}
          width={meterWidth}
        />
      ) : null}
    </Line>
  );
}

export function NoGpuLine({ detected }: { detected: boolean }) {
  return (
    <Line>
      <Label>GPU</Label>
      <Text dimColor>{detected ? "none detected · serving on the CPU" : "detecting…"}</Text>
    </Line>
  );
}

export function HostLine({ host, width }: { host: HostReading; width: number }) {
  const cores = `${host.cores} core${host.cores === 1 ? "" : "s"}  `;
  const room = Math.max(16, width - LABEL_WIDTH - cores.length - 9);
  // the load's label is short, the memory's long: memory gets the larger share
  const loadWidth = Math.floor(room * 0.4);
  return (
    <Line>
      <Label>CPU</Label>
      <Text bold>{cores}</Text>
      <Meter
        name="LOAD"
        fraction={host.load1 / Math.max(1, host.cores)}
        label={host.load1.toFixed(2)}
        width={loadWidth}
      />
      <Meter
        name=" RAM"
        fraction={host.memoryUsedMb / Math.max(1, host.memoryTotalMb)}
        label={`${mebibytes(host.memoryUsedMb)}/${mebibytes(host.memoryTotalMb)}`}
        width={room - loadWidth}
      />
    </Line>
  );
}
