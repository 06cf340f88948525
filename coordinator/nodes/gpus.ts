// A node's graphics cards as the registry keeps them, from the readings it sends (Register, Heartbeat, a cluster
// view): one mapping, and one comparison so that the same readings again make nothing new.
import type { Gpu } from "../../gen/iris/v1/common_pb.ts";

export interface GpuReading {
  name: string;
  vramTotalMb: number;
  vramUsedMb: number;
  utilizationPercent: number;
}

/** GPU readings as a node sends them (Register, Heartbeat, a cluster view) in the registry's shape. */
export function gpusOf(gpus: readonly Gpu[]): GpuReading[] {
  return gpus.map((g) => ({
    name: g.name,
    vramTotalMb: Number(g.vramTotalMb),
    vramUsedMb: Number(g.vramUsedMb),
    utilizationPercent: g.utilizationPercent,
  }));
}

/** Whether the readings sent say what `gpus` already does (then nothing is made of them). */
export function sameGpus(readings: readonly Gpu[], gpus: GpuReading[]): boolean {
  return (
    readings.length === gpus.length &&
    readings.every(
      (g, i) =>
        g.name === gpus[i]!.name &&
        Number(g.vramTotalMb) === gpus[i]!.vramTotalMb &&
        Number(g.vramUsedMb) === gpus[i]!.vramUsedMb &&
        g.utilizationPercent === gpus[i]!.utilizationPercent,
    )
  );
}
