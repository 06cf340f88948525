// Trains the local difficulty model from coordinator/tasks/classify/corpus/ and writes
// coordinator/tasks/classify/difficulty-model.bin (`npm run train:classifier`). `--check` only says whether the
// committed file is what the corpus trains to; `--cv` also prints grouped 5-fold cross-validation on the training
// prompts. The frozen test split is never read here: `npm run bench:classifier` scores it.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DIFFICULTIES } from "../common/vocabulary.ts";
import { expandCorpus } from "../coordinator/tasks/classify/augment.ts";
import { loadMaterial, loadTrainingSeeds } from "../coordinator/tasks/classify/corpus.ts";
import { decide, MODEL_FILE } from "../coordinator/tasks/classify/model.ts";
import {
  crossValidate,
  encodeExamples,
  figures,
  trainFromCorpus,
  TRAINING,
  type Figures,
} from "../coordinator/tasks/classify/train.ts";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const percent = (x: number) => `${(100 * x).toFixed(1)} %`;
const line = (name: string, f: Figures) =>
  `${name}: accuracy ${percent(f.accuracy)}, under-classified ${percent(f.under)}, per ` +
  `class ${f.perClass.map(percent).join(" / ")}`;

const started = performance.now();
const run = trainFromCorpus();
const { training, offsets } = run.model.header;
console.log(
  `${training.prompts} written prompts → ${training.items} training items in ${training.languages} ` +
    `languages; ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
console.log(`calibration split (${run.calibration.withOffsets.items} prompts), SIMPLE / COMPLEX / ADVANCED:`);
console.log(`  ${line("argmax", run.calibration.withoutOffsets)}`);
console.log(`  ${line(`offsets ${JSON.stringify(offsets)}`, run.calibration.withOffsets)}`);

if (process.argv.includes("--cv")) {
  const examples = encodeExamples(expandCorpus(loadTrainingSeeds(), loadMaterial(), TRAINING.seed));
  const labels = examples.map((e) => e.label);
  const scores = crossValidate(examples);
  const predict = (o: number[]) => scores.map((s) => DIFFICULTIES.indexOf(decide(s, o)));
  console.log(`grouped ${TRAINING.folds}-fold cross-validation on the training items:`);
  console.log(`  ${line("argmax", figures(labels, predict([0, 0, 0])))}`);
  console.log(`  ${line("offsets", figures(labels, predict(offsets)))}`);
}

const path = fileURLToPath(MODEL_FILE);
if (process.argv.includes("--check")) {
  const same = existsSync(path) && sha(readFileSync(path)) === sha(run.bytes);
  console.log(
    same
      ? `${path} is up to date (${sha(run.bytes)})`
      : `${path} differs from what the corpus trains to: run npm run train:classifier`,
  );
  process.exitCode = same ? 0 : 1;
} else {
  writeFileSync(path, run.bytes);
  console.log(`wrote ${path}: ${run.bytes.length.toLocaleString("en-US")} bytes, sha256 ${sha(run.bytes)}`);
}
