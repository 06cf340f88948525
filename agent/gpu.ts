// GPU detection for the node agent: asks nvidia-smi, then rocm-smi, then macOS system_profiler, and parses what they
// print.
import { execFile } from "node:child_process";
import { totalmem } from "node:os";

type GpuVendor = "nvidia" | "amd" | "apple" | "other";

/** One GPU as the agent reports it. Memory is in MiB ("Mb" here), the unit nvidia-smi reports. */
export type Gpu = {
  name: string;
  vendor: GpuVendor;
  vramTotalMb: number;
  vramUsedMb: number;
  /** 0 when the tool cannot tell (nvidia-smi "[N/A]", system_profiler never reports it). */
  utilizationPercent: number;
};

/** Runs a command; undefined when it is missing, fails, exits non-zero or times out. */
export type CommandRunner = (cmd: string, args: string[]) => Promise<{ stdout: string } | undefined>;

// nvidia-smi without persistence mode and system_profiler each take a second or two on a cold start;
// a probe that hangs longer than this must not hold up the agent's start-up.
const COMMAND_TIMEOUT_MS = 5_000;
const MIB = 1024 * 1024;

/** The part of node:child_process.execFile that a runner uses (tests hand in a fake). */
export type ExecFile = (
  cmd: string,
  args: string[],
  options: { timeout: number; encoding: "utf8"; maxBuffer: number; windowsHide: boolean },
  callback: (error: NodeJS.ErrnoException | null, stdout: string) => void,
) => unknown;

/**
 * A runner that remembers the tools that are not installed (ENOENT): the readings poll every few seconds, and
 * spawning a process only to learn again that nvidia-smi does not exist costs more than the reading is worth.
 * Any other failure (a driver hiccup, a timeout) is asked again next time.
 */
export function createCommandRunner(exec: ExecFile = execFile as unknown as ExecFile): CommandRunner {
  const missing = new Set<string>();
  return (cmd, args) =>
    new Promise((resolve) => {
      if (missing.has(cmd)) return resolve(undefined);
      exec(
        cmd,
        args,
        { timeout: COMMAND_TIMEOUT_MS, encoding: "utf8", maxBuffer: 4 * MIB, windowsHide: true },
        (error, stdout) => {
          if (error?.code === "ENOENT") missing.add(cmd);
          resolve(error ? undefined : { stdout });
        },
      );
    });
}

export const defaultRunner: CommandRunner = createCommandRunner();

const NVIDIA_SMI_ARGS = ["--query-gpu=name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader,nounits"];
const ROCM_SMI_ARGS = ["--showproductname", "--showmeminfo", "vram", "--showuse", "--json"];
const SYSTEM_PROFILER_ARGS = ["SPDisplaysDataType", "-json"];

/**
 * The GPUs of this machine, from the first tool that finds any (NVIDIA, then AMD, then Apple); [] means
 * "no GPU". Tools are not merged: a machine answering nvidia-smi is served by its NVIDIA cards.
 * Never throws: a broken driver or an odd tool version must leave the agent running as a CPU node.
 */
export async function detectGpus(run: CommandRunner = defaultRunner): Promise<Gpu[]> {
  const probes: Array<() => Promise<Gpu[]>> = [
    async () => parseNvidiaSmi((await run("nvidia-smi", NVIDIA_SMI_ARGS))?.stdout ?? ""),
    async () => parseRocmSmi((await run("rocm-smi", ROCM_SMI_ARGS))?.stdout ?? ""),
    async () => {
      const gpus = parseSystemProfiler((await run("system_profiler", SYSTEM_PROFILER_ARGS))?.stdout ?? "", 0);
      if (!gpus.some((g) => g.vendor === "apple")) return gpus;
      const memoryMb = await unifiedMemoryMb(run); // only asked on Apple Silicon
      return gpus.map((g) => (g.vendor === "apple" ? { ...g, vramTotalMb: memoryMb } : g));
    },
  ];
  for (const probe of probes) {
    try {
      const gpus = await probe();
      if (gpus.length > 0) return gpus;
    } catch {
      // A runner that throws counts as a missing tool; try the next one.
    }
  }
  return [];
}

/**
 * Apple Silicon has no separate VRAM: the GPU may use (most of) the machine's unified memory, which is what
 * decides the largest model it can run. So its VRAM is the machine's total memory, from `sysctl -n
 * hw.memsize` (bytes), or from os.totalmem() when sysctl does not answer.
 */
async function unifiedMemoryMb(run: CommandRunner): Promise<number> {
  const bytes = Number((await run("sysctl", ["-n", "hw.memsize"]))?.stdout.trim());
  return Math.round((Number.isFinite(bytes) && bytes > 0 ? bytes : totalmem()) / MIB);
}

const NOT_AVAILABLE = /^\[?(N\/A|Not Supported|Unknown Error|Insufficient Permissions)\]?$/i;

/** A number from a tool's field: "24564", "24564 MiB", "35 %", "35.0"; 0 for "[N/A]"; undefined if neither. */
function numberField(raw: string): number | undefined {
  const text = raw.trim();
  if (NOT_AVAILABLE.test(text)) return 0;
  const match = /^(\d+(?:\.\d+)?)\s*(?:MiB|%)?$/i.exec(text);
  return match ? Number(match[1]) : undefined;
}

/**
 * nvidia-smi's `--query-gpu=name,memory.total,memory.used,utilization.gpu` CSV, one GPU a line, with or
 * without the header line and units. Fields are read from the right so that a name with a comma survives.
 */
export function parseNvidiaSmi(stdout: string): Gpu[] {
  const gpus: Gpu[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const fields = line.split(",");
    if (fields.length < 4) continue;
    // The header line ("name, memory.total [MiB], ...") fails the number checks below, like any garbage.
    const [total, used, utilization] = fields.slice(-3).map(numberField);
    const name = fields.slice(0, -3).join(",").trim();
    if (!name || total === undefined || used === undefined || utilization === undefined) continue;
    gpus.push({ name, vendor: "nvidia", vramTotalMb: total, vramUsedMb: used, utilizationPercent: utilization });
  }
  return gpus;
}

type Fields = Record<string, unknown>;

/** rocm-smi's `--json` output ({"card0": {...}}); falls back to its plain text form (`GPU[0] : key: value`). */
export function parseRocmSmi(stdout: string): Gpu[] {
  const cards = rocmJson(stdout) ?? rocmText(stdout);
  const gpus: Gpu[] = [];
  for (const [key, card] of Object.entries(cards)) {
    if (!/^card\d+$/i.test(key) || !isObject(card)) continue; // e.g. "system" holds the driver version
    const field = (name: string) => fieldIgnoringCase(card, name);
    const totalBytes = Number(field("VRAM Total Memory (B)"));
    if (!Number.isFinite(totalBytes) || totalBytes <= 0) continue;
    const usedBytes = Number(field("VRAM Total Used Memory (B)"));
    const utilization = Number(field("GPU use (%)"));
    gpus.push({
      name: rocmName(card) ?? `AMD GPU ${key.slice(4)}`,
      vendor: "amd",
      vramTotalMb: Math.round(totalBytes / MIB),
      vramUsedMb: Number.isFinite(usedBytes) ? Math.round(usedBytes / MIB) : 0,
      utilizationPercent: Number.isFinite(utilization) ? utilization : 0,
    });
  }
  return gpus;
}

function rocmJson(stdout: string): Fields | undefined {
  // Some rocm-smi versions print warnings before the JSON, so parse from the first brace.
  const start = stdout.indexOf("{");
  const end = stdout.lastIndexOf("}");
  if (start < 0 || end < start) return undefined;
  try {
    const parsed: unknown = JSON.parse(stdout.slice(start, end + 1));
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function rocmText(stdout: string): Fields {
  const cards: Record<string, Fields> = {};
  for (const line of stdout.split(/\r?\n/)) {
    const match = /^GPU\[(\d+)\]\s*:\s*([^:]+?):\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    const [, index, key, value] = match as unknown as [string, string, string, string];
    (cards[`card${index}`] ??= {})[key] = value;
  }
  return cards;
}

// "Card series" is the marketing name on most versions, but some print the PCI id (0x744c) in one of these
// fields and the name in another; ROCm 6 capitalises them ("Card Series").
function rocmName(card: Fields): string | undefined {
  for (const key of ["Card series", "Card model", "Card SKU"]) {
    const value = fieldIgnoringCase(card, key);
    if (typeof value === "string" && value.trim() && !/^(0x[0-9a-f]+|N\/A)$/i.test(value.trim())) {
      return value.trim();
    }
  }
  return undefined;
}

/**
 * `system_profiler SPDisplaysDataType -json`. Apple GPUs get the unified memory size as VRAM (see
 * unifiedMemoryMb); discrete and Intel GPUs of Intel Macs get `spdisplays_vram` / `spdisplays_vram_shared`
 * ("8 GB", "1536 MB"). The tool reports neither memory use nor load, so those are 0.
 */
export function parseSystemProfiler(stdout: string, unifiedMemoryMb: number): Gpu[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return [];
  }
  const entries = isObject(parsed) ? parsed.SPDisplaysDataType : undefined;
  if (!Array.isArray(entries)) return [];
  const gpus: Gpu[] = [];
  for (const entry of entries) {
    if (!isObject(entry)) continue;
    const name = stringField(entry, "sppci_model") ?? stringField(entry, "_name");
    if (!name) continue;
    const vendor = macVendor(stringField(entry, "spdisplays_vendor") ?? "", name);
    const vram = sizeMb(stringField(entry, "spdisplays_vram") ?? stringField(entry, "spdisplays_vram_shared"));
    gpus.push({
      name,
      vendor,
      vramTotalMb: vendor === "apple" ? unifiedMemoryMb : (vram ?? 0),
      vramUsedMb: 0,
      utilizationPercent: 0,
    });
  }
  return gpus;
}

function macVendor(vendor: string, name: string): GpuVendor {
  const text = `${vendor} ${name}`.toLowerCase();
  if (/apple|0x106b/.test(text)) return "apple";
  // The vendor field reads "sppci_vendor_amd" on some versions and "AMD (0x1002)" on others.
  if (/amd|radeon|vendor_ati|0x1002/.test(text)) return "amd";
  if (/nvidia|geforce|quadro|0x10de/.test(text)) return "nvidia";
  return "other";
}

/** "8 GB" → 8192, "1536 MB" → 1536. */
function sizeMb(text: string | undefined): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(MB|GB|TB)$/i.exec(text?.trim() ?? "");
  if (!match) return undefined;
  const factor = { MB: 1, GB: 1024, TB: 1024 * 1024 }[match[2]!.toUpperCase() as "MB" | "GB" | "TB"];
  return Math.round(Number(match[1]) * factor);
}

function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringField(fields: Fields, key: string): string | undefined {
  const value = fields[key];
  return typeof value === "string" && value.trim() ? value.trim() : undefined;
}

function fieldIgnoringCase(fields: Fields, key: string): unknown {
  if (key in fields) return fields[key];
  const lower = key.toLowerCase();
  const found = Object.keys(fields).find((k) => k.toLowerCase() === lower);
  return found === undefined ? undefined : fields[found];
}
