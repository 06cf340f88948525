// The local difficulty classifier: a linear model (multinomial logistic regression over hashed character n-grams,
// see features.ts) trained by `npm run train:classifier`, shipped as difficulty-model.bin (384 KiB of int8 weights)
// and run in-process: no network, no download, under ten microseconds a request. The chain's always-there last link.
import { readFileSync } from "node:fs";
import { DIFFICULTIES, type Difficulty } from "../../../common/vocabulary.ts";
import type { Classifier, ClassifierInput } from "./classifier.ts";
import { BUCKETS, extractFeatures, FEATURE_VERSION, newFeatures, type Features } from "./features.ts";

export const MODEL_FILE = new URL("./difficulty-model.bin", import.meta.url);
const MAGIC = "IRISDM01";
const CLASSES = DIFFICULTIES.length;

export interface ModelHeader {
  featureVersion: number;
  buckets: number;
  classes: readonly Difficulty[];
  /** Weight of class c at bucket b is weights[b * classes + c] * scales[c]. */
  scales: number[];
  bias: number[];
  /**
   * Added to each class's score before the largest wins: chosen on the calibration split so that a request is
   * rarely sent to a tier below its difficulty (the costly mistake), at a small cost in requests sent one tier up.
   */
  offsets: number[];
  /** What it was trained on, for the record: prompts, items, the corpus hash, the calibration figures. */
  training: Record<string, unknown>;
}

export interface DifficultyModel {
  header: ModelHeader;
  weights: Int8Array;
}

/** The model file: magic, a little-endian u32 header length, the header as JSON, then the int8 weights. */
export function encodeModel(model: DifficultyModel): Buffer {
  const header = Buffer.from(JSON.stringify(model.header), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  return Buffer.concat([
    Buffer.from(MAGIC, "latin1"),
    length,
    header,
    Buffer.from(model.weights.buffer, model.weights.byteOffset, model.weights.byteLength),
  ]);
}

export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelFileError";
  }
}

export function decodeModel(bytes: Uint8Array): DifficultyModel {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 12 || buffer.toString("latin1", 0, 8) !== MAGIC)
    throw new ModelFileError("not a difficulty model file");
  const headerLength = buffer.readUInt32LE(8);
  if (12 + headerLength > buffer.length) throw new ModelFileError("difficulty model file is truncated");
  let header: ModelHeader;
  try {
    header = JSON.parse(buffer.toString("utf8", 12, 12 + headerLength)) as ModelHeader;
  } catch {
    throw new ModelFileError("difficulty model header is not JSON");
  }
  if (header.featureVersion !== FEATURE_VERSION || header.buckets !== BUCKETS) {
    throw new ModelFileError(
      `difficulty model has features v${header.featureVersion}/${header.buckets}, this code reads ` +
        `v${FEATURE_VERSION}/${BUCKETS}: retrain it`,
    );
  }
  if (JSON.stringify(header.classes) !== JSON.stringify(DIFFICULTIES))
    throw new ModelFileError(`difficulty model classes ${JSON.stringify(header.classes)}`);
  for (const key of ["scales", "bias", "offsets"] as const) {
    if (!Array.isArray(header[key]) || header[key].length !== CLASSES || !header[key].every(Number.isFinite)) {
      throw new ModelFileError(`difficulty model header: ${key} must be ${CLASSES} numbers`);
    }
  }
  const weightBytes = BUCKETS * CLASSES;
  if (buffer.length !== 12 + headerLength + weightBytes)
    throw new ModelFileError(
      `difficulty model weights: ${buffer.length - 12 - headerLength} bytes, expected ${weightBytes}`,
    );
  // a copy: the weights must not share (or pin) the file buffer's memory
  const weights = new Int8Array(weightBytes);
  weights.set(new Int8Array(buffer.buffer, buffer.byteOffset + 12 + headerLength, weightBytes));
  return { header, weights };
}

export function loadDifficultyModel(file: URL | string = MODEL_FILE): DifficultyModel {
  return decodeModel(readFileSync(file));
}

/** Each class's score (log-odds up to a constant) for a request's features, offsets not applied. */
export function scoreFeatures(
  model: DifficultyModel,
  features: Features,
  scores: Float64Array = new Float64Array(CLASSES),
): Float64Array {
  const { weights, header } = model;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  const { indices, values, count } = features;
  for (let i = 0; i < count; i++) {
    const at = indices[i]! * CLASSES;
    const value = values[i]!;
    s0 += weights[at]! * value;
    s1 += weights[at + 1]! * value;
    s2 += weights[at + 2]! * value;
  }
  scores[0] = header.bias[0]! + s0 * header.scales[0]!;
  scores[1] = header.bias[1]! + s1 * header.scales[1]!;
  scores[2] = header.bias[2]! + s2 * header.scales[2]!;
  return scores;
}

/** The class with the highest score after the cost-aware offsets; a tie goes to the harder class. */
export function decide(scores: ArrayLike<number>, offsets: readonly number[]): Difficulty {
  let best = 0;
  for (let c = 1; c < CLASSES; c++) if (scores[c]! + offsets[c]! >= scores[best]! + offsets[best]!) best = c;
  return DIFFICULTIES[best]!;
}

let shipped: DifficultyModel | undefined;
/** The model shipped next to this file, read once. */
export function shippedModel(): DifficultyModel {
  return (shipped ??= loadDifficultyModel());
}

const buffer = newFeatures();
const scratch = new Float64Array(CLASSES);

/**
 * A request this long (textWeight, about 500 tokens) is never SIMPLE, whatever it asks: the BASIC tier's small
 * models cannot hold it in their context. A capacity limit like the tier table's, not a judgement of the task.
 */
export const LONG_REQUEST_WEIGHT = 2_000;

/** The difficulty the model gives a conversation (its last user turn, read with what came before). */
export function classifyLocally(
  input: Pick<ClassifierInput, "messages">,
  model: DifficultyModel = shippedModel(),
): Difficulty {
  const features = extractFeatures(input.messages, buffer);
  const difficulty = decide(scoreFeatures(model, features, scratch), model.header.offsets);
  return difficulty === "SIMPLE" && features.weight >= LONG_REQUEST_WEIGHT ? "COMPLEX" : difficulty;
}

/** A Classifier over `model`; without one, the shipped model (read on first use: links.ts reads it at start-up). */
export function createLocalClassifier(model?: DifficultyModel): Classifier {
  return {
    async classify(input) {
      return { difficulty: classifyLocally(input, model ?? shippedModel()), classifier: "local" };
    },
  };
}

/** The chain's always-there link. */
export const localClassifier: Classifier = createLocalClassifier();
