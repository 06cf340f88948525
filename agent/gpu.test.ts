// GPU detection: the parsers over recorded tool outputs, the order tools are asked in, and failure → no GPU.
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { describe, expect, it } from "vitest";
import {
  type CommandRunner,
  type ExecFile,
  type Gpu,
  createCommandRunner,
  defaultRunner,
  detectGpus,
  parseNvidiaSmi,
  parseRocmSmi,
  parseSystemProfiler,
} from "./gpu.ts";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/gpu/${name}`, import.meta.url), "utf8");

const gpu = (name: string, vendor: Gpu["vendor"], total: number, used: number, util: number): Gpu => ({
  name,
  vendor,
  vramTotalMb: total,
  vramUsedMb: used,
  utilizationPercent: util,
});

describe("parseNvidiaSmi", () => {
  it.each<[string, Gpu[]]>([
    ["nvidia-smi-rtx4090.csv", [gpu("NVIDIA GeForce RTX 4090", "nvidia", 24564, 1043, 7)]],
    [
      "nvidia-smi-2x-a100-80gb.csv",
      [gpu("NVIDIA A100-SXM4-80GB", "nvidia", 81920, 4, 0), gpu("NVIDIA A100-SXM4-80GB", "nvidia", 81920, 62011, 97)],
    ],
    ["nvidia-smi-laptop-mx450-na.csv", [gpu("NVIDIA GeForce MX450", "nvidia", 2048, 146, 0)]],
    ["nvidia-smi-laptop-mx150-not-supported.csv", [gpu("GeForce MX150", "nvidia", 2002, 57, 0)]],
    [
      "nvidia-smi-header-units.csv",
      [
        gpu("NVIDIA GeForce RTX 3090", "nvidia", 24576, 20817, 35),
        gpu("NVIDIA GeForce RTX 3060", "nvidia", 12288, 5, 0),
      ],
    ],
    ["nvidia-smi-no-driver.txt", []],
  ])("%s", (file, expected) => {
    expect(parseNvidiaSmi(fixture(file))).toEqual(expected);
  });

  it.each<[string, string, Gpu[]]>([
    ["empty output", "", []],
    ["CRLF line ends", "NVIDIA L4, 23034, 0, 0\r\n", [gpu("NVIDIA L4", "nvidia", 23034, 0, 0)]],
    ["a name with a comma", "Tesla T4, rev B, 15360, 0, 0\n", [gpu("Tesla T4, rev B", "nvidia", 15360, 0, 0)]],
    [
      "memory [N/A] (unified-memory boards)",
      "NVIDIA GH200 480GB, [N/A], [N/A], 0\n",
      [gpu("NVIDIA GH200 480GB", "nvidia", 0, 0, 0)],
    ],
    ["too few fields", "NVIDIA GeForce RTX 4090, 24564, 1043\n", []],
    ["words where numbers belong", "foo, bar, baz, qux\n", []],
    ["a negative number", "NVIDIA X, -1, 0, 0\n", []],
    ["an empty name", " , 24564, 1043, 7\n", []],
  ])("%s", (_label, stdout, expected) => {
    expect(parseNvidiaSmi(stdout)).toEqual(expected);
  });
});

describe("parseRocmSmi", () => {
  it.each<[string, Gpu[]]>([
    ["rocm-smi-rx7900xtx-rocm6.json", [gpu("Radeon RX 7900 XTX", "amd", 24560, 1108, 3)]],
    [
      "rocm-smi-mi250-rocm5.json",
      [
        gpu("AMD INSTINCT MI250 (MCM) OAM AC MBA", "amd", 65520, 57344, 100),
        gpu("AMD INSTINCT MI250 (MCM) OAM AC MBA", "amd", 65520, 11, 0),
      ],
    ],
    [
      "rocm-smi-rx6800-with-igpu.json",
      [gpu("Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]", "amd", 16368, 660, 0), gpu("Raphael", "amd", 64, 25, 2)],
    ],
    ["rocm-smi-rx7900xtx-text.txt", [gpu("Navi 31 [Radeon RX 7900 XT/7900 XTX]", "amd", 24560, 1108, 3)]],
  ])("%s", (file, expected) => {
    expect(parseRocmSmi(fixture(file))).toEqual(expected);
  });

  it.each<[string, string, Gpu[]]>([
    [
      "warnings printed before the JSON; a system entry is not a card",
      'WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n\n{"system": ' +
        '{"Driver version": "6.7.0"}, "card0": {"VRAM Total Memory (B)": "1073741824", "VRAM Total Used Memory (B)": ' +
        '"0", "GPU use (%)": "N/A", "Card series": "0x73ff", "Card model": "Radeon RX 6600"}}',
      [gpu("Radeon RX 6600", "amd", 1024, 0, 0)],
    ],
    [
      "no usable name falls back to the card number",
      '{"card1": {"VRAM Total Memory (B)": "1073741824", "Card series": "N/A", "Card model": "0x1234"}}',
      [gpu("AMD GPU 1", "amd", 1024, 0, 0)],
    ],
    ["a card without VRAM figures", '{"card0": {"Card series": "Radeon RX 7900 XTX"}}', []],
    ["an empty object", "{}", []],
    ["broken JSON", '{"card0": {"VRAM Total Memory (B)": "1073741824"', []],
    ["plain garbage", "rocm-smi: command failed\n", []],
  ])("%s", (_label, stdout, expected) => {
    expect(parseRocmSmi(stdout)).toEqual(expected);
  });
});

describe("parseSystemProfiler", () => {
  it.each<[string, number, Gpu[]]>([
    ["system-profiler-m2-max.json", 65536, [gpu("Apple M2 Max", "apple", 65536, 0, 0)]],
    ["system-profiler-m3.json", 16384, [gpu("Apple M3", "apple", 16384, 0, 0)]],
    [
      "system-profiler-intel-radeon-pro-5500m.json",
      32768,
      [gpu("Intel UHD Graphics 630", "other", 1536, 0, 0), gpu("AMD Radeon Pro 5500M", "amd", 8192, 0, 0)],
    ],
  ])("%s with %d MiB of memory", (file, memoryMb, expected) => {
    expect(parseSystemProfiler(fixture(file), memoryMb)).toEqual(expected);
  });

  it.each<[string, string, Gpu[]]>([
    ["no display data", '{"SPDisplaysDataType": []}', []],
    ["an entry without a name is skipped", '{"SPDisplaysDataType": [{"sppci_cores": "8"}, "x", null]}', []],
    [
      "an NVIDIA card in an old Mac Pro",
      '{"SPDisplaysDataType": [{"sppci_model": "NVIDIA GeForce GTX 680", "spdisplays_vendor": "NVIDIA (0x10de)", ' +
        '"spdisplays_vram": "2 GB"}]}',
      [gpu("NVIDIA GeForce GTX 680", "nvidia", 2048, 0, 0)],
    ],
    ["the wrong data type", '{"SPHardwareDataType": [{"_name": "hardware_overview"}]}', []],
    ["not JSON", "Graphics/Displays:\n\n    Apple M2:\n", []],
  ])("%s", (_label, stdout, expected) => {
    expect(parseSystemProfiler(stdout, 8192)).toEqual(expected);
  });
});

/** A runner that answers from a table, missing commands as undefined, and records what was asked. */
function fakeRunner(outputs: Record<string, string | undefined>): CommandRunner & { calls: string[] } {
  const calls: string[] = [];
  const run = async (cmd: string, args: string[]) => {
    calls.push([cmd, ...args].join(" "));
    const stdout = outputs[cmd];
    return stdout === undefined ? undefined : { stdout };
  };
  return Object.assign(run, { calls });
}

describe("detectGpus", () => {
  it("asks nvidia-smi with the query and CSV options the parser expects", async () => {
    const run = fakeRunner({ "nvidia-smi": fixture("nvidia-smi-rtx4090.csv") });
    expect(await detectGpus(run)).toEqual([gpu("NVIDIA GeForce RTX 4090", "nvidia", 24564, 1043, 7)]);
    expect(run.calls).toEqual([
      "nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits",
    ]);
  });

  it("prefers NVIDIA over AMD over Apple, stopping at the first tool that finds a GPU", async () => {
    const all = {
      "nvidia-smi": fixture("nvidia-smi-rtx4090.csv"),
      "rocm-smi": fixture("rocm-smi-rx7900xtx-rocm6.json"),
      system_profiler: fixture("system-profiler-m2-max.json"),
      sysctl: "68719476736\n",
    };
    expect((await detectGpus(fakeRunner(all))).map((g) => g.vendor)).toEqual(["nvidia"]);
    const withoutNvidia = fakeRunner({ ...all, "nvidia-smi": undefined });
    expect((await detectGpus(withoutNvidia)).map((g) => g.vendor)).toEqual(["amd"]);
    expect(withoutNvidia.calls.map((c) => c.split(" ")[0])).toEqual(["nvidia-smi", "rocm-smi"]);
    const appleOnly = fakeRunner({ system_profiler: all.system_profiler, sysctl: all.sysctl });
    expect(await detectGpus(appleOnly)).toEqual([gpu("Apple M2 Max", "apple", 65536, 0, 0)]);
    expect(appleOnly.calls).toEqual([
      expect.stringMatching(/^nvidia-smi /),
      "rocm-smi --showproductname --showmeminfo vram --showuse --json",
      "system_profiler SPDisplaysDataType -json",
      "sysctl -n hw.memsize",
    ]);
  });

  it("moves on when a tool answers but finds no GPU (nvidia-smi without a driver)", async () => {
    const run = fakeRunner({
      "nvidia-smi": fixture("nvidia-smi-no-driver.txt"),
      "rocm-smi": fixture("rocm-smi-rx7900xtx-text.txt"),
    });
    expect((await detectGpus(run)).map((g) => g.name)).toEqual(["Navi 31 [Radeon RX 7900 XT/7900 XTX]"]);
  });

  it("uses os.totalmem() for Apple Silicon when sysctl does not answer", async () => {
    const run = fakeRunner({ system_profiler: fixture("system-profiler-m3.json"), sysctl: "garbage" });
    expect(await detectGpus(run)).toEqual([gpu("Apple M3", "apple", Math.round(totalmem() / 2 ** 20), 0, 0)]);
  });

  it.each<[string, Record<string, string | undefined>]>([
    ["no tool is installed", {}],
    ["every tool prints garbage", { "nvidia-smi": "\u0000\u0001oops", "rocm-smi": "{{{", system_profiler: "<plist>" }],
    ["every tool prints nothing", { "nvidia-smi": "", "rocm-smi": "", system_profiler: "" }],
  ])("finds no GPU when %s", async (_label, outputs) => {
    const run = fakeRunner(outputs);
    expect(await detectGpus(run)).toEqual([]);
    expect(run.calls).toHaveLength(3);
  });

  it("finds no GPU, without throwing, when the runner itself throws", async () => {
    const run: CommandRunner = async () => {
      throw new Error("spawn EACCES");
    };
    await expect(detectGpus(run)).resolves.toEqual([]);
  });
});

describe("defaultRunner", () => {
  it("returns stdout of a command that succeeds", async () => {
    expect(await defaultRunner(process.execPath, ["-e", "process.stdout.write('24564')"])).toEqual({ stdout: "24564" });
  });

  it.each<[string, string, string[]]>([
    ["a missing command", "iris-no-such-command-7f3a", []],
    ["a non-zero exit", process.execPath, ["-e", "process.stdout.write('partial'); process.exit(9)"]],
  ])("returns undefined for %s", async (_label, cmd, args) => {
    expect(await defaultRunner(cmd, args)).toBeUndefined();
  });

  it("spawns a tool that is not installed once, and one that failed otherwise again", async () => {
    const spawned: string[] = [];
    const exec: ExecFile = (cmd, _args, _options, callback) => {
      spawned.push(cmd);
      const error = Object.assign(new Error(`spawn ${cmd}`), { code: cmd === "nvidia-smi" ? "ENOENT" : "ETIMEDOUT" });
      callback(error, "");
    };
    const run = createCommandRunner(exec);
    for (let i = 0; i < 3; i++) {
      expect(await run("nvidia-smi", [])).toBeUndefined();
      expect(await run("rocm-smi", [])).toBeUndefined();
    }
    expect(spawned).toEqual(["nvidia-smi", "rocm-smi", "rocm-smi", "rocm-smi"]);
  });
});
