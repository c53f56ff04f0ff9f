/**
 * Tables of a parity comparison: one row per model and seed, means over
 * seeds at the kept epoch and at each task's best validation epoch, and the
 * difference epoch by epoch. The bench prints them after its runs and saves
 * the runs as JSON, so that bench/parity-summary.ts can print the same
 * tables over the seeds of several bench runs.
 */
import { readFile, rename, writeFile } from "node:fs/promises";

/** One framework's training run, as the bench records it. */
export interface RunResult {
  /** Test AUC per task at the kept epoch. */
  auc: number[];
  parameters: number;
  seconds: number;
  /** Mean training loss per task, per epoch. */
  trainLoss: number[][];
  /** Validation AUC per task, per epoch. */
  validation: number[][];
  /** Test AUC per task, per epoch, of each epoch's weights. */
  testByEpoch: number[][];
  /** Each step's task losses, from a step comparison. */
  stepLosses?: number[][];
}

/** A model and seed's two runs. */
export interface SeedRecord {
  model: string;
  seed: number;
  ours: RunResult;
  reference: RunResult;
}

/** The runs of one kind of comparison, as saved beside the bench's report. */
export interface ComparisonRecords {
  title: string;
  tasks: string[];
  /** Index in `tasks` of the task whose validation AUC early stopping watches. */
  earlystopTaskid: number;
  /** Column names of each seed's two runs. */
  sides: [string, string];
  records: SeedRecord[];
}

const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(4)}`;

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
/** Formats the sample standard deviation times `scale`, or "-" for a single value, which has none. */
const formatSpread = (values: number[], scale = 1) =>
  values.length < 2 ? "-" : ((Math.sqrt(values.reduce((a, v) => a + (v - mean(values)) ** 2, 0) / (values.length - 1)) * scale).toFixed(4));
/** Formats the mean of per-seed differences with its standard error. */
const meanDifference = (differences: number[]) => `${signed(mean(differences))} (${formatSpread(differences, 1 / Math.sqrt(differences.length))})`;

/** Formats "epochs run (kept)": the kept epoch is the first with the best validation AUC of the watched task. */
export function keptEpoch(validation: number[][], earlystopTaskid: number): string {
  const watched = validation.map((v) => v[earlystopTaskid]);
  return `${validation.length} (${watched.indexOf(Math.max(...watched)) + 1})`;
}

/** Returns each task's test AUC at the first epoch with that task's best validation AUC. */
export function atBestValidation(result: RunResult): number[] {
  return result.auc.map((_, i) => {
    const validation = result.validation.map((v) => v[i]);
    return result.testByEpoch[validation.indexOf(Math.max(...validation))][i];
  });
}

/** Formats a seed's row of the per-seed table. */
export function seedRow(record: SeedRecord, earlystopTaskid: number): string {
  const { ours, reference } = record;
  const cells = ours.auc.map((v, i) => `${v.toFixed(4)} | ${reference.auc[i].toFixed(4)} | ${signed(v - reference.auc[i])}`);
  return (
    `| ${record.model} | ${record.seed} | ${cells.join(" | ")} | ${keptEpoch(ours.validation, earlystopTaskid)} | ` +
    `${keptEpoch(reference.validation, earlystopTaskid)} | ${ours.seconds.toFixed(0)} | ${reference.seconds.toFixed(0)} |`
  );
}

/** Returns the lines of the per-seed table, the two tables of means and the epoch-by-epoch table. */
export function summarize(comparison: ComparisonRecords): string[] {
  const { title, tasks, records } = comparison;
  const [first, second] = comparison.sides;
  const seeds = [...new Set(records.map((r) => r.seed))];
  const models = [...new Set(records.map((r) => r.model))];
  const lines: string[] = [];
  const pair = (column: string) => `${column} ${first} | ${column} ${second}`;
  lines.push("", `${title}: test AUC, and epochs run with the kept epoch in brackets.`, "");
  lines.push(`| model | seed | ${tasks.map((t) => `${pair(t)} | difference`).join(" | ")} | ${pair("epochs")} | ${pair("seconds")} |`);
  lines.push(`| --- | ---: |${" ---: |".repeat(3 * tasks.length + 4)}`);
  for (const record of records) lines.push(seedRow(record, comparison.earlystopTaskid));

  const tables: [string, (result: RunResult) => number[]][] = [
    ["", (result) => result.auc],
    [", at each task's best validation epoch rather than the kept one", atBestValidation],
  ];
  for (const [kind, auc] of tables) {
    lines.push("", `${title}${kind}: means over seeds ${seeds.join(", ")}, with the sample standard deviation of one run in brackets.`);
    lines.push("The difference is the mean of the per-seed differences, with its standard error in brackets.", "");
    lines.push(`| model | ${pair("parameters")} | ${tasks.map((t) => `${pair(t)} | difference`).join(" | ")} |`);
    lines.push(`| --- |${" ---: |".repeat(2 + 3 * tasks.length)}`);
    for (const model of models) {
      const own = records.filter((r) => r.model === model);
      const cells = tasks.map((_, i) => {
        const ours = own.map((r) => auc(r.ours)[i]);
        const reference = own.map((r) => auc(r.reference)[i]);
        const differences = ours.map((v, k) => v - reference[k]);
        return `${mean(ours).toFixed(4)} (${formatSpread(ours)}) | ${mean(reference).toFixed(4)} (${formatSpread(reference)}) | ${meanDifference(differences)}`;
      });
      const counts = [own[0].ours.parameters, own[0].reference.parameters].map((n) => n.toLocaleString("en-US"));
      lines.push(`| ${model} | ${counts.join(" | ")} | ${cells.join(" | ")} |`);
    }
  }

  // Early stopping may keep different epochs in a seed's two runs. Compared epoch by epoch, the runs
  // differ only by what they compute.
  lines.push("", `${title}, epoch by epoch: the mean of the per-seed differences in test AUC (${first} - ${second}),`);
  lines.push("over the seeds whose two runs both trained that epoch, with its standard error in brackets.", "");
  lines.push(`| model | epoch | seeds | ${tasks.join(" difference | ")} difference |`);
  lines.push(`| --- | ---: | ---: |${" ---: |".repeat(tasks.length)}`);
  for (const model of models) {
    const own = records.filter((r) => r.model === model);
    const epochsRun = Math.max(...own.map((r) => r.ours.testByEpoch.length));
    for (let e = 0; e < epochsRun; e++) {
      const pairs = own.flatMap((r) => (e < r.ours.testByEpoch.length && e < r.reference.testByEpoch.length ? [[r.ours.testByEpoch[e], r.reference.testByEpoch[e]]] : []));
      if (pairs.length === 0) continue;
      const cells = tasks.map((_, i) => (pairs.length > 1 ? meanDifference(pairs.map(([a, b]) => a[i] - b[i])) : signed(pairs[0][0][i] - pairs[0][1][i])));
      lines.push(`| ${model} | ${e + 1} | ${pairs.length} | ${cells.join(" | ")} |`);
    }
  }
  return lines;
}

/** Writes `comparison` as JSON to `path` through a temporary file, so that a failed write leaves the old file. */
export async function saveRecords(path: string, comparison: ComparisonRecords): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(comparison)}\n`);
  await rename(temporary, path);
}

/**
 * Reads the saved comparisons at `paths` and joins their records. They must
 * share the title, tasks, early-stopping task and sides; a model and seed
 * may appear in one file only.
 */
export async function joinRecords(paths: string[]): Promise<ComparisonRecords> {
  if (paths.length === 0) throw new Error("no comparison files given: expected at least one");
  let joined: ComparisonRecords | undefined;
  const origin = new Map<string, string>();
  for (const path of paths) {
    let comparison: ComparisonRecords;
    try {
      comparison = JSON.parse(await readFile(path, "utf8")) as ComparisonRecords;
    } catch (error) {
      throw new Error(`failed to read the comparison file ${path}: ${(error as Error).message}`);
    }
    const wellFormed =
      typeof comparison === "object" &&
      comparison !== null &&
      Array.isArray(comparison.records) &&
      Array.isArray(comparison.tasks) &&
      Array.isArray(comparison.sides);
    if (!wellFormed) {
      throw new Error(`invalid comparison file ${path}: expected "title", "tasks", "earlystopTaskid", "sides" and "records"`);
    }
    if (joined === undefined) {
      joined = { ...comparison, records: [] };
    } else {
      for (const key of ["title", "tasks", "earlystopTaskid", "sides"] as const) {
        if (JSON.stringify(comparison[key]) !== JSON.stringify(joined[key])) {
          throw new Error(
            `${path} has ${key} ${JSON.stringify(comparison[key])}, but ${paths[0]} has ${JSON.stringify(joined[key])}: ` +
              "join only the same kind of comparison",
          );
        }
      }
    }
    for (const record of comparison.records) {
      const key = `${record.model} seed ${record.seed}`;
      const earlier = origin.get(key);
      if (earlier !== undefined) throw new Error(`${key} is in both ${earlier} and ${path}: each model and seed may appear once`);
      origin.set(key, path);
      joined.records.push(record);
    }
  }
  return joined!;
}
