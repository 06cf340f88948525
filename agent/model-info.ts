// What the agent knows of its model: the name parser (shared with the coordinator) and the model file's fingerprint.
import { open } from "node:fs/promises";
import { createHash } from "node:crypto";

export { parseModelName } from "../common/model-name.ts";

/** How much of the file each of the three samples reads. */
const SAMPLE_BYTES = 1 << 20;

/**
 * A fingerprint of a model file: hex SHA-256 over its size and its first, middle and last MiB (the whole file when
 * smaller than 3 MiB). The first MiB holds the GGUF header and metadata (architecture, tokenizer, quantization);
 * the middle and last ones hold tensor data, so a re-trained or re-quantized file under the same name differs.
 * Three reads, whatever the size: hashing a 40 GB file whole would hold up the agent's start for minutes.
 */
export async function modelFileFingerprint(path: string): Promise<string> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    const hash = createHash("sha256").update(`${size}\n`);
    const starts = size <= 3 * SAMPLE_BYTES ? [0] : [0, Math.floor(size / 2) - SAMPLE_BYTES / 2, size - SAMPLE_BYTES];
    for (const start of starts) {
      const length = size <= 3 * SAMPLE_BYTES ? size : SAMPLE_BYTES;
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await file.read(buffer, 0, length, start);
      hash.update(buffer.subarray(0, bytesRead));
    }
    return hash.digest("hex");
  } finally {
    await file.close();
  }
}
