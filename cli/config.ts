/**
 * The JSON config that drives `onnxrec prepare` and `onnxrec train`: data,
 * features, labels, model and trainer. Paths are relative to the config file.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { type ModelOptions, modelOptionsSchema, taskCountOf } from "../graph/models/schemas.js";
import { type FeatureSpec, type LabelSpec, describeValue, parseFeatureSpecs, parseLabelSpecs } from "../training/features.js";
import { parseSplit } from "../training/data.js";
import { RESTORE_BEST } from "../training/trainer.js";

const ratio = z.number().min(0).max(1);

const dataSchema = z
  .object({
    train: z.string().optional().describe("CSV of the training split, or the file to split"),
    val: z.string().optional(),
    test: z.string().optional(),
    csv: z.string().optional().describe("one CSV to split by `split`"),
    split: z.tuple([ratio, ratio, ratio]).optional(),
    seed: z.number().int().optional(),
    preparedDir: z.string().min(1).describe("folder for the Arrow files and dataset.json"),
  })
  .strict()
  .refine((d) => (d.csv === undefined) !== (d.train === undefined), {
    message: 'give either "csv" (one file to split) or "train" (with optional "val" and "test"), not both',
  })
  .refine((d) => d.split === undefined || d.val === undefined || d.test === undefined, {
    message: 'expected no "split" when "train", "val" and "test" are all given: it only cuts the splits that have no file',
    path: ["split"],
  })
  .refine((d) => d.split === undefined || splitIsValid(d.split, [true, d.val === undefined, d.test === undefined]), {
    message: "expected [train, val, test] ratios that sum to 1, above 0 for train and for each split cut from it",
    path: ["split"],
  });

/** Returns whether `split` sums to 1 and gives a positive share to each split that `cut` marks as cut from the data. */
function splitIsValid(split: [number, number, number], cut: boolean[]): boolean {
  try {
    parseSplit(split);
  } catch {
    return false;
  }
  return split.every((share, i) => !cut[i] || share > 0);
}

const trainerSchema = z
  .object({
    batchSize: z.number().int().positive().default(2048),
    evalBatchSize: z.number().int().positive().optional(),
    nEpoch: z.number().int().positive().default(10),
    earlystopTaskid: z.number().int().min(0).default(0),
    earlystopPatience: z.number().int().positive().default(2),
    restoreBest: z.enum(RESTORE_BEST).default("always"),
    seed: z.number().int().default(2022),
    threads: z.number().int().positive().optional(),
    optimizerParams: z
      .object({
        lr: z.number().positive().default(1e-3),
        weightDecay: z.number().min(0).default(1e-5),
        decoupledWeightDecay: z.boolean().optional(),
        denseEmbeddingRows: z.number().int().min(0).optional(),
      })
      .strict()
      .default({ lr: 1e-3, weightDecay: 1e-5 }),
    regularizationParams: z
      .object({
        embeddingL1: z.number().min(0).optional(),
        embeddingL2: z.number().min(0).optional(),
        denseL1: z.number().min(0).optional(),
        denseL2: z.number().min(0).optional(),
      })
      .strict()
      .optional()
      .describe("L1/L2 penalties of embeddings (rows a batch touches) and other weights, batch norm excluded"),
    schedulerParams: z
      .object({ stepSize: z.number().int().positive(), gamma: z.number().positive() })
      .strict()
      .optional()
      .describe("step learning-rate schedule: lr * gamma^floor(epoch / stepSize)"),
    adaptiveParams: z
      .discriminatedUnion("method", [
        z.object({ method: z.literal("equal") }).strict(),
        z.object({ method: z.literal("uwl"), clamp: z.boolean().optional() }).strict(),
        z.object({ method: z.literal("gradnorm"), alpha: z.number().min(0).optional() }).strict(),
        z
          .object({ method: z.literal("metabalance"), relaxFactor: z.number().min(0).lt(1).optional(), beta: z.number().min(0).lt(1).optional() })
          .strict(),
      ])
      .default({ method: "equal" }),
  })
  .strict();

const configSchema = z
  .object({
    data: dataSchema,
    features: z.array(z.unknown()).min(1),
    labels: z.array(z.unknown()).min(1),
    extraColumns: z.array(z.string()).optional(),
    oracle: z.record(z.string(), z.string()).optional().describe("task name -> extra column holding the true probability"),
    model: modelOptionsSchema,
    trainer: trainerSchema.default(trainerSchema.parse({})),
    modelDir: z.string().min(1),
  })
  .strict();

export type TrainerConfig = z.infer<typeof trainerSchema>;

export interface Config {
  path: string;
  data: z.infer<typeof dataSchema>;
  features: FeatureSpec[];
  labels: LabelSpec[];
  extraColumns: string[];
  oracle: Record<string, string>;
  model: ModelOptions;
  trainer: TrainerConfig;
  modelDir: string;
  /** The config as written in the file. */
  raw: unknown;
}

/** Thrown for a config that fails validation; the message lists every problem with its JSON path. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Formats each zod issue as one line with the field path, what was expected
 * and the value received, read from `raw` at that path (JSON, at most 80
 * characters). An unknown key gets a line of its own.
 */
function formatIssues(error: z.ZodError, raw: unknown): string {
  return error.issues.flatMap((issue) => issueLines(issue, raw)).join("\n");
}

function issueLines(issue: z.core.$ZodIssue, raw: unknown): string[] {
  // zod reports an integer field's bounds, and a non-number in it, as those of a number.
  if ((issue.code === "too_small" || issue.code === "too_big") && issue.origin === "number" && isIntegerField(issue.path, raw)) {
    issue = { ...issue, origin: "int" };
  } else if (issue.code === "invalid_type" && issue.expected === "number" && isIntegerField(issue.path, raw)) {
    issue = { ...issue, expected: "int" };
  }
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => {
      const path = [...issue.path, key];
      return `  ${formatPath(path)}: unknown field, received ${describeValue(valueAt(raw, path))}; remove it or correct its name`;
    });
  }
  const value = valueAt(raw, issue.path);
  const received = value === undefined ? "but the field is missing" : `received ${describeValue(value)}`;
  return [`  ${formatPath(issue.path)}: ${expectation(issue)}, ${received}`];
}

/** Describes what a field should have been, from the zod issue. */
function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return `expected ${typeName(issue.expected)}`;
    case "too_small":
      return `expected ${boundText(issue.origin, issue.inclusive ? ">=" : ">", issue.minimum, "at least")}`;
    case "too_big":
      return `expected ${boundText(issue.origin, issue.inclusive ? "<=" : "<", issue.maximum, "at most")}`;
    case "invalid_value":
      return `expected ${oneOf(issue.values)}`;
    case "invalid_union":
      // A discriminated union whose discriminator matches no option lists the valid discriminator values.
      if ("options" in issue && Array.isArray(issue.options)) return `expected ${oneOf(issue.options)}`;
      return "expected one of the allowed forms";
    default:
      return issue.message;
  }
}

const TYPE_NAMES: Record<string, string> = {
  number: "a number",
  int: "an integer",
  string: "a string",
  boolean: "a boolean",
  object: "an object",
  array: "an array",
  tuple: "an array",
  record: "an object",
};

function typeName(expected: string): string {
  return TYPE_NAMES[expected] ?? expected;
}

function boundText(origin: string, operator: string, bound: number | bigint, words: string): string {
  if (origin === "int") return `an integer ${operator} ${bound}`;
  if (origin === "number" || origin === "bigint") return `a number ${operator} ${bound}`;
  const exclusive = operator === ">" || operator === "<";
  const count = exclusive ? `${operator === ">" ? "more" : "fewer"} than ${bound}` : `${words} ${bound}`;
  const plural = exclusive || Number(bound) !== 1;
  if (origin === "array") return `an array with ${count} ${plural ? "items" : "item"}`;
  if (origin === "string") return `a string of ${count} ${plural ? "characters" : "character"}`;
  return `${origin} with ${count} ${plural ? "elements" : "element"}`;
}

function oneOf(values: readonly unknown[]): string {
  return values.length === 1 ? describeValue(values[0]) : `one of ${values.map((value) => describeValue(value)).join(", ")}`;
}

/** Formats a zod path as in JavaScript: `trainer.optimizerParams.lr`, `data.split[1]`. */
function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  let text = "";
  for (const key of path) {
    if (typeof key === "number") {
      text += `[${key}]`;
    } else {
      text += text === "" ? String(key) : `.${String(key)}`;
    }
  }
  return text;
}

/**
 * Returns whether the config schema has an integer field at `path`, following
 * the union member that `raw`'s discriminator (such as model.kind) picks.
 */
function isIntegerField(path: readonly PropertyKey[], raw: unknown): boolean {
  let schema: z.core.$ZodType | undefined = configSchema;
  let value = raw;
  let depth = 0;
  while (schema !== undefined) {
    const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
    if ("innerType" in def) {
      schema = def.innerType as z.core.$ZodType;
      continue;
    }
    if (def.type === "union") {
      const key = def.discriminator as string | undefined;
      const picked = (def.options as z.core.$ZodType[]).find((option) => {
        const shape = (option._zod.def as { shape?: Record<string, z.core.$ZodType> }).shape;
        const literal = key === undefined ? undefined : shape?.[key];
        return literal !== undefined && z.safeParse(literal, valueAt(value, [key as string])).success;
      });
      schema = picked;
      continue;
    }
    if (depth === path.length) return def.type === "number" && (schema as z.ZodNumber).isInt === true;
    const key = path[depth++];
    value = valueAt(value, [key]);
    if (def.type === "object") schema = (def.shape as Record<PropertyKey, z.core.$ZodType>)[key];
    else if (def.type === "array") schema = def.element as z.core.$ZodType;
    else if (def.type === "tuple") schema = (def.items as z.core.$ZodType[])[key as number];
    else if (def.type === "record") schema = def.valueType as z.core.$ZodType;
    else return false;
  }
  return false;
}

/** Returns the value at `path` in `raw`, or undefined when a key along the path is missing. */
function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let value = raw;
  for (const key of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** Returns "1 tower" or "2 towers". */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** Returns "there is 1 task" or "there are 2 tasks". */
function thereAre(n: number, noun: string): string {
  return `there ${n === 1 ? "is" : "are"} ${count(n, noun)}`;
}

/**
 * Checks ESMM's feature lists against the features: each name is a sparse
 * feature, and together, users then items, they are the features in order
 * (ESMM embeds these and nothing else).
 */
function esmmFeatureProblems(user: readonly string[], item: readonly string[], features: readonly FeatureSpec[]): string[] {
  const problems: string[] = [];
  const names = features.map((f) => f.name);
  for (const [key, list] of [["userFeatures", user], ["itemFeatures", item]] as const) {
    list.forEach((name, i) => {
      const feature = features.find((f) => f.name === name);
      if (feature === undefined) problems.push(`model.${key}[${i}]: "${name}" is not a feature; the features are ${names.join(", ")}`);
      else if (feature.kind !== "sparse") problems.push(`model.${key}[${i}]: "${name}" is a dense feature; ESMM embeds sparse features only`);
    });
  }
  if (problems.length > 0) return problems;
  const listed = [...user, ...item];
  const missing = names.filter((name) => !listed.includes(name));
  if (missing.length > 0) {
    problems.push(`features ${missing.join(", ")}: in neither model.userFeatures nor model.itemFeatures; ESMM uses only the features listed there`);
  } else if (listed.join("\u0000") !== names.join("\u0000")) {
    problems.push(`model.userFeatures then model.itemFeatures list [${listed.join(", ")}]; list them in the order of features, [${names.join(", ")}]`);
  }
  return problems;
}

/** Validates a parsed config; `path` names it in errors and anchors relative paths. */
export function parseConfig(raw: unknown, path: string): Config {
  const problems: string[] = [];
  // The feature and label problems are listed with the schema's, so that one run shows them all.
  // A field that is not a non-empty array is left to the schema.
  const specs = <T>(key: string, parse: (value: unknown) => T[]): T[] => {
    const value = valueAt(raw, [key]);
    if (!Array.isArray(value) || value.length === 0) return [];
    try {
      return parse(value);
    } catch (error) {
      problems.push(...(error as Error).message.split("\n"));
      return [];
    }
  };
  const features: FeatureSpec[] = specs("features", parseFeatureSpecs);
  const labels: LabelSpec[] = specs("labels", parseLabelSpecs);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = [formatIssues(result.error, raw), ...problems.map((line) => `  ${line}`)];
    throw new ConfigError(`invalid config ${path}:\n${lines.join("\n")}`);
  }
  const c = result.data;
  if (problems.length === 1) throw new ConfigError(`invalid config ${path}: ${problems[0]}`);
  if (problems.length > 1) throw new ConfigError(`invalid config ${path}:\n${problems.map((line) => `  ${line}`).join("\n")}`);
  const taskCount = taskCountOf(c.model);
  if (taskCount !== undefined && taskCount !== labels.length) {
    const modelTasks =
      c.model.kind === "esmm" ? "an ESMM model has 3 tasks (cvr, ctr, ctcvr)" : `model.towerParamsList has ${count(taskCount, "tower")}`;
    throw new ConfigError(`invalid config ${path}: ${modelTasks}, but ${thereAre(labels.length, "task")} (one per label)`);
  }
  if (c.trainer.earlystopTaskid >= labels.length) {
    throw new ConfigError(
      `invalid config ${path}: trainer.earlystopTaskid is ${c.trainer.earlystopTaskid}, but ${thereAre(labels.length, "task")}`,
    );
  }
  if (c.model.kind === "esmm") {
    const esmmProblems = esmmFeatureProblems(c.model.userFeatures, c.model.itemFeatures, features);
    if (esmmProblems.length > 0) throw new ConfigError(`invalid config ${path}:\n${esmmProblems.map((line) => `  ${line}`).join("\n")}`);
  }
  const tasks = labels.map((l) => l.task);
  for (const [task, column] of Object.entries(c.oracle ?? {})) {
    if (!tasks.includes(task)) throw new ConfigError(`invalid config ${path}: oracle names task "${task}", not one of ${tasks.join(", ")}`);
    if (!(c.extraColumns ?? []).includes(column)) {
      throw new ConfigError(`invalid config ${path}: oracle column "${column}" for task "${task}" is not in extraColumns`);
    }
  }
  const base = dirname(resolve(path));
  const at = (p: string | undefined) => (p === undefined ? undefined : resolve(base, p));
  return {
    path,
    data: { ...c.data, train: at(c.data.train), val: at(c.data.val), test: at(c.data.test), csv: at(c.data.csv), preparedDir: at(c.data.preparedDir)! },
    features,
    labels,
    extraColumns: c.extraColumns ?? [],
    oracle: c.oracle ?? {},
    model: c.model,
    trainer: c.trainer,
    modelDir: at(c.modelDir)!,
    raw,
  };
}

export async function readConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read config ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config ${path} is not valid JSON: ${(error as Error).message}`);
  }
  return parseConfig(raw, path);
}
