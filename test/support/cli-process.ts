// Runs the real `iris` CLI (client/cli.ts) as a child process for tests: stdout read as it arrives, exit code, signals.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Each stdout read with the time it arrived: streaming shows as several chunks over time. */
  chunks: { text: string; at: number }[];
  exitedAt: number;
}

export interface CliOptions {
  env: Record<string, string>;
  /** Written to stdin, which is then closed; without it stdin is /dev/null (not a TTY, empty). */
  input?: string;
  /** Called on every stdout chunk with the child, e.g. to send it SIGINT once the answer has started. */
  onStdout?: (text: string, child: ChildProcess) => void;
  timeoutMs?: number;
}

/** Variables a developer's shell may carry that would change what the CLI does. */
const inherited = ["IRIS_URL", "IRIS_ACCOUNT_KEY", "IRIS_PASSWORD", "IRIS_CA_PATH", "XDG_CONFIG_HOME", "NODE_OPTIONS"];

export function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = { ...process.env };
  for (const name of inherited) delete clean[name];
  return { ...clean, ...env };
}

export function runCli(args: string[], options: CliOptions): Promise<CliRun> {
  // node --import tsx: one process, so a signal reaches the CLI itself (the tsx CLI would relay it to a child)
  const child = spawn(process.execPath, ["--import", "tsx", "client/cli.ts", ...args], {
    cwd: root,
    env: cleanEnv(options.env),
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  const run: CliRun = { code: null, stdout: "", stderr: "", chunks: [], exitedAt: 0 };
  child.stdout!.on("data", (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    run.stdout += text;
    run.chunks.push({ text, at: Date.now() });
    options.onStdout?.(text, child);
  });
  child.stderr!.on("data", (chunk: Buffer) => (run.stderr += chunk.toString("utf8")));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`iris ${args.join(" ")} did not exit in time; stdout: ${run.stdout}; stderr: ${run.stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      run.code = code;
      run.exitedAt = Date.now();
      resolve(run);
    });
  });
}
