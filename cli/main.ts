/** The onnxrec command: prepare, train, evaluate, serve, visualize and export multi-task models. */
import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError } from "commander";
import { readConfig } from "./config.js";
import { registerExport } from "./export.js";
import { registerServe } from "./serve.js";
import { runEvaluate, runPrepare, runTrain } from "./train.js";
import { registerVisualize } from "./visualize.js";

const log = (line: string) => process.stdout.write(`${line}\n`);

function packageVersion(): string {
  const path = new URL("../package.json", import.meta.url);
  return (JSON.parse(readFileSync(path, "utf8")) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command("onnxrec")
    .description("Train and serve multi-task recommendation models with ONNX Runtime")
    .version(packageVersion(), "-V, --version", "print the onnxrec version")
    .showHelpAfterError();

  program
    .command("prepare")
    .description("convert the config's CSV data to Arrow files (train/val/test) with vocabularies built on train")
    .requiredOption("-c, --config <file>", "JSON config (data, features, labels, model, trainer, modelDir)")
    .action(async (options: { config: string }) => {
      await runPrepare(await readConfig(options.config), log);
    });

  program
    .command("train")
    .description("train the config's model (preparing the data first when needed) and write the model directory")
    .requiredOption("-c, --config <file>", "JSON config (data, features, labels, model, trainer, modelDir)")
    .option("--no-progress", "do not draw progress bars")
    .option("--resume", "continue from the latest checkpoint in modelDir, at the epoch after it")
    .action(async (options: { config: string; progress: boolean; resume?: boolean }) => {
      await runTrain(await readConfig(options.config), log, { progress: options.progress, resume: options.resume });
    });

  program
    .command("evaluate")
    .description("score a prepared split with a model directory's inference.onnx and print each task's metric")
    .argument("<model-dir>", "model directory written by train")
    .requiredOption("-d, --data <dir>", "prepared data folder (dataset.json and <split>.arrow)")
    .option("-s, --split <name>", "split to score: train, val or test", (value) => {
      if (!["train", "val", "test"].includes(value)) throw new InvalidArgumentError("expected train, val or test");
      return value;
    }, "test")
    .action(async (modelDir: string, options: { data: string; split: string }) => {
      await runEvaluate(modelDir, options.data, options.split, log);
    });

  registerServe(program);
  registerVisualize(program, log);
  registerExport(program, log);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.stderr.write(`onnxrec: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
