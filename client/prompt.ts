// Terminal input for the CLI: passwords read without echo, and a piped stdin read whole.
import { EXIT_INTERRUPTED } from "./failure.ts";

/** Reads all of a piped stdin as UTF-8. */
export async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/** The first line of a piped stdin (a password piped as `echo secret | iris login`). */
export async function readFirstLine(input: NodeJS.ReadableStream): Promise<string> {
  return (await readAll(input)).split(/\r?\n/, 1)[0] ?? "";
}

/**
 * Asks on `output` and reads one line from a TTY in raw mode, echoing nothing (not even stars, which
 * would tell onlookers the length). Ctrl-C exits 130 as it would anywhere else; backspace works.
 */
export function readSecret(question: string, input: NodeJS.ReadStream, output: NodeJS.WriteStream): Promise<string> {
  output.write(question);
  return new Promise((resolve) => {
    let secret = "";
    const finish = () => {
      input.off("data", onData);
      input.setRawMode(false);
      input.pause();
      output.write("\n");
    };
    const onData = (data: Buffer) => {
      for (const char of data.toString("utf8")) {
        if (char === "\r" || char === "\n" || char === "\u0004") {
          finish();
          resolve(secret);
          return;
        }
        if (char === "\u0003") {
          finish();
          process.exit(EXIT_INTERRUPTED);
        }
        if (char === "\u007f" || char === "\b") secret = [...secret].slice(0, -1).join("");
        else if (char >= " ") secret += char;
      }
    };
    input.setRawMode(true);
    input.resume();
    input.on("data", onData);
  });
}
