// The parent's handle on the peer process (load-process.ts): spawn it, send it commands, get the answers.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { LoadCommand } from "./load-process.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

export interface LoadProcess {
  pid: number;
  send<T = Record<string, unknown>>(command: LoadCommand): Promise<T>;
  stop(): Promise<void>;
}

export async function startLoadProcess(): Promise<LoadProcess> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "bench/load-process.ts"], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pending = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", (code) => {
      exited = true;
      for (const { reject } of pending.values()) reject(new Error(`the load process exited with ${code}`));
      pending.clear();
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`the load process exited with ${code} before it was ready`)));
  });
  child.on("message", (message: { id: number; ok: boolean; result?: unknown; error?: string }) => {
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(new Error(`load process: ${message.error}`));
  });
  return {
    pid: child.pid!,
    send(command) {
      if (exited) return Promise.reject(new Error("the load process has exited"));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, command });
      });
    },
    async stop() {
      if (exited) return;
      child.disconnect();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
