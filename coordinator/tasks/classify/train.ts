// Trains the local difficulty model: multinomial logistic regression by AdaGrad over the features of features.ts,
// int8 weights, cost-aware offsets chosen on the calibration split (corpus/dev-split.txt). Deterministic (seeded
// order, no threads, no Math.random): the same corpus gives the same model file byte for byte.
// `npm run train:classifier` runs it; crossValidate is for `--cv` reports only.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { DIFFICULTIES } from "../../../common/vocabulary.ts";
import { seededRandom } from "../../../common/seeded-random.ts";
import { expandCorpus, type TrainingItem } from "./augment.ts";
import { CORPUS_DIR, DEV_SPLIT_FILE, loadDevSplit, loadMaterial, loadTrainingSeeds, toMessages } from "./corpus.ts";
import { BUCKETS, extractFeatures, FEATURE_VERSION, newFeatures, type Features } from "./features.ts";
import { decide, encodeModel, scoreFeatures, type DifficultyModel } from "./model.ts";

export const TRAINING = {
  epochs: 12,
  learningRate: 0.3,
  l2: 1e-5,
  seed: 20_240_611,
  folds: 5,
  /** The share of calibration requests the offsets may send below their class (the goal on fresh data is 3 %). */
  underTarget: 0.02,
  /** Offsets tried, and how many grid steps each way the cost is averaged over. */
  offsetGrid: { from: -2, to: 4, step: 0.05, smoothing: 5 },
} as const;

const CLASSES = DIFFICULTIES.length;

export interface Example extends Features {
  label: number;
  group: string;
}

export function encodeExamples(items: readonly TrainingItem[]): Example[] {
  const scratch = newFeatures();
  return items.map((item) => {
    const f = extractFeatures(item.messages, scratch);
    return {
      indices: f.indices.slice(0, f.count),
      values: f.values.slice(0, f.count),
      count: f.count,
      weight: f.weight,
      label: DIFFICULTIES.indexOf(item.label),
      group: item.group,
    };
  });
}

/** Float weights (bucket-major, class-minor) and biases fitted to `examples`. */
export function fit(
  examples: readonly Example[],
  seed: number = TRAINING.seed,
): { weights: Float64Array; bias: Float64Array } {
  const weights = new Float64Array(BUCKETS * CLASSES);
  const squares = new Float64Array(BUCKETS * CLASSES);
  const bias = new Float64Array(CLASSES);
  const biasSquares = new Float64Array(CLASSES);
  const random = seededRandom(seed);
  const order = examples.map((_, i) => i);
  const z = new Float64Array(CLASSES);
  const gradient = new Float64Array(CLASSES);
  const { learningRate: rate, l2 } = TRAINING;
  for (let epoch = 0; epoch < TRAINING.epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const index of order) {
      const example = examples[index]!;
      for (let c = 0; c < CLASSES; c++) z[c] = bias[c]!;
      for (let k = 0; k < example.count; k++) {
        const value = example.values[k]!;
        const at = example.indices[k]! * CLASSES;
        for (let c = 0; c < CLASSES; c++) z[c] = z[c]! + weights[at + c]! * value;
      }
      const max = Math.max(z[0]!, z[1]!, z[2]!);
      let sum = 0;
      for (let c = 0; c < CLASSES; c++) sum += z[c] = Math.exp(z[c]! - max);
      for (let c = 0; c < CLASSES; c++) gradient[c] = z[c]! / sum - (c === example.label ? 1 : 0);
      for (let c = 0; c < CLASSES; c++) {
        biasSquares[c] = biasSquares[c]! + gradient[c]! ** 2;
        bias[c] = bias[c]! - (rate * gradient[c]!) / Math.sqrt(biasSquares[c]! + 1e-8);
      }
      for (let k = 0; k < example.count; k++) {
        const value = example.values[k]!;
        const at = example.indices[k]! * CLASSES;
        for (let c = 0; c < CLASSES; c++) {
          const g = gradient[c]! * value + l2 * weights[at + c]!;
          squares[at + c] = squares[at + c]! + g * g;
          weights[at + c] = weights[at + c]! - (rate * g) / Math.sqrt(squares[at + c]! + 1e-8);
        }
      }
    }
  }
  return { weights, bias };
}

/** int8 weights with one scale per class; the biases stay floats (rounded so the header stays short). */
export function quantize(
  fitted: { weights: Float64Array; bias: Float64Array },
  offsets: number[],
  training: Record<string, unknown>,
): DifficultyModel {
  const scales = DIFFICULTIES.map((_, c) => {
    let max = 0;
    for (let at = c; at < fitted.weights.length; at += CLASSES) max = Math.max(max, Math.abs(fitted.weights[at]!));
    return max === 0 ? 1 : max / 127;
  });
  const weights = new Int8Array(fitted.weights.length);
  for (let at = 0; at < weights.length; at++) weights[at] = Math.round(fitted.weights[at]! / scales[at % CLASSES]!);
  const round = (x: number) => Number(x.toPrecision(9));
  return {
    header: {
      featureVersion: FEATURE_VERSION,
      buckets: BUCKETS,
      classes: DIFFICULTIES,
      scales: scales.map(round),
      bias: [...fitted.bias].map(round),
      offsets,
      training,
    },
    weights,
  };
}

export interface Figures {
  items: number;
  accuracy: number;
  /** Share of items sent below their class. */
  under: number;
  perClass: number[];
}

export function figures(labels: readonly number[], predictions: readonly number[]): Figures {
  let right = 0;
  let under = 0;
  const perClass = [0, 0, 0];
  const totals = [0, 0, 0];
  labels.forEach((label, i) => {
    totals[label]!++;
    if (predictions[i] === label) {
      right++;
      perClass[label]!++;
    } else if (predictions[i]! < label) under++;
  });
  const round = (x: number) => Math.round(x * 10_000) / 10_000;
  return {
    items: labels.length,
    accuracy: round(right / labels.length),
    under: round(under / labels.length),
    perClass: perClass.map((r, c) => round(r / Math.max(1, totals[c]!))),
  };
}

/**
 * Offsets (SIMPLE's fixed at 0) with the most right answers on the calibration scores among those that send at
 * most TRAINING.underTarget of the requests below their class (the costly mistake: a weak node fails or times out
 * on it, while a strong node only makes an easy request wait). Both figures are averaged over a neighbourhood of
 * each grid point, so the choice lands in a broad valley rather than on a lucky point a few items wide; the first
 * best wins, so the choice is reproducible.
 */
export function chooseOffsets(scores: readonly Float64Array[], labels: readonly number[]): number[] {
  const { from, to, step, smoothing } = TRAINING.offsetGrid;
  const steps = Math.round((to - from) / step) + 1;
  const at = (k: number) => Number((from + k * step).toFixed(2));
  const right = new Float64Array(steps * steps);
  const under = new Float64Array(steps * steps);
  for (let a = 0; a < steps; a++) {
    for (let b = 0; b < steps; b++) {
      const offsets = [0, at(a), at(b)];
      scores.forEach((s, i) => {
        const predicted = DIFFICULTIES.indexOf(decide(s, offsets));
        if (predicted === labels[i]) right[a * steps + b]!++;
        else if (predicted < labels[i]!) under[a * steps + b]!++;
      });
    }
  }
  const average = (grid: Float64Array, a: number, b: number) => {
    let sum = 0;
    let n = 0;
    for (let da = Math.max(0, a - smoothing); da <= Math.min(steps - 1, a + smoothing); da++) {
      for (let db = Math.max(0, b - smoothing); db <= Math.min(steps - 1, b + smoothing); db++) {
        sum += grid[da * steps + db]!;
        n++;
      }
    }
    return sum / n;
  };
  const limit = TRAINING.underTarget * labels.length;
  let best = { right: -1, under: Infinity, offsets: [0, 0, 0] };
  for (let a = 0; a < steps; a++) {
    for (let b = 0; b < steps; b++) {
      const candidate = { right: average(right, a, b), under: average(under, a, b), offsets: [0, at(a), at(b)] };
      const fits = candidate.under <= limit;
      const bestFits = best.under <= limit;
      // within the limit, the most right answers; while nothing fits yet, the fewest sent too low
      if (fits ? !bestFits || candidate.right > best.right : !bestFits && candidate.under < best.under)
        best = candidate;
    }
  }
  return best.offsets;
}

/** Out-of-fold scores: each group's items scored by a model that never saw the group. */
export function crossValidate(examples: readonly Example[]): Float64Array[] {
  const groups = [...new Set(examples.map((e) => e.group))];
  const random = seededRandom(TRAINING.seed + 1);
  for (let i = groups.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [groups[i], groups[j]] = [groups[j]!, groups[i]!];
  }
  const fold = new Map(groups.map((g, i) => [g, i % TRAINING.folds]));
  const scores: Float64Array[] = new Array(examples.length);
  for (let f = 0; f < TRAINING.folds; f++) {
    const model = quantize(fit(examples.filter((e) => fold.get(e.group) !== f)), [0, 0, 0], {});
    examples.forEach((e, i) => {
      if (fold.get(e.group) === f) scores[i] = scoreFeatures(model, e);
    });
  }
  return scores;
}

/** A hash of every corpus file training reads, in a fixed order: it names the data a model file was made from. */
export function corpusHash(): string {
  const hash = createHash("sha256");
  hash.update("dev-split.txt\n").update(readFileSync(DEV_SPLIT_FILE));
  for (const dir of ["train/", "material/"]) {
    const url = new URL(dir, CORPUS_DIR);
    for (const file of readdirSync(url).sort()) hash.update(`${dir}${file}\n`).update(readFileSync(new URL(file, url)));
  }
  return hash.digest("hex");
}

export interface TrainingRun {
  model: DifficultyModel;
  bytes: Buffer;
  /** On the calibration split: argmax, then with the chosen offsets. */
  calibration: { withoutOffsets: Figures; withOffsets: Figures };
}

/**
 * The whole pipeline, as the script and the reproducibility test run it: fit on the training prompts, then pick
 * the offsets on the calibration split (written apart from them, in the style of real requests). The frozen test
 * split is never read here.
 */
export function trainFromCorpus(): TrainingRun {
  const seeds = loadTrainingSeeds();
  const examples = encodeExamples(expandCorpus(seeds, loadMaterial(), TRAINING.seed));
  const fitted = quantize(fit(examples), [0, 0, 0], {});
  const dev = encodeExamples(
    loadDevSplit().map((item) => ({
      group: item.id,
      lang: item.lang,
      label: item.label,
      kind: item.kind,
      messages: toMessages(item.text),
    })),
  );
  const labels = dev.map((e) => e.label);
  const scores = dev.map((e) => scoreFeatures(fitted, e));
  const offsets = chooseOffsets(scores, labels);
  const predict = (o: number[]) => scores.map((s) => DIFFICULTIES.indexOf(decide(s, o)));
  const calibration = {
    withoutOffsets: figures(labels, predict([0, 0, 0])),
    withOffsets: figures(labels, predict(offsets)),
  };
  const model: DifficultyModel = {
    weights: fitted.weights,
    header: {
      ...fitted.header,
      offsets,
      training: {
        corpusSha256: corpusHash(),
        prompts: seeds.length,
        items: examples.length,
        languages: new Set(seeds.map((s) => s.lang)).size,
        calibration: calibration.withOffsets,
      },
    },
  };
  return { model, bytes: encodeModel(model), calibration };
}
