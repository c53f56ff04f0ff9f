/** `onnxrec visualize <model-dir>`: draws a model directory's architecture as an SVG diagram. */
import { mkdir } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { visualizeModel } from "../graph/visualize.js";
import { writeFileAtomic } from "../training/checkpoint.js";
import { loadModelDir } from "../training/model-dir.js";

export const DIAGRAM_FILE = "model.svg";

/** Writes the diagram of the model in `modelDir` to `out` (default <model-dir>/model.svg) and returns the path. */
export async function visualizeModelDir(modelDir: string, out?: string): Promise<string> {
  const loaded = await loadModelDir(modelDir);
  const path = out ?? join(modelDir, DIAGRAM_FILE);
  const parameters = loaded.json.parameterCount.toLocaleString("en-US");
  const svg = visualizeModel(loaded.model, {
    taskNames: loaded.json.tasks.map((task) => task.name),
    subtitle: `${basename(resolve(modelDir))}: ${parameters} parameters`,
  });
  await mkdir(dirname(resolve(path)), { recursive: true });
  await writeFileAtomic(path, svg);
  return path;
}

export function registerVisualize(program: Command, log: (line: string) => void): Command {
  return program
    .command("visualize")
    .description("draw the architecture of a model directory's model as an SVG diagram")
    .argument("<model-dir>", "model directory written by train")
    .option("-o, --out <file>", "SVG file to write (default: <model-dir>/model.svg)")
    .action(async (modelDir: string, options: { out?: string }) => {
      const path = await visualizeModelDir(modelDir, options.out);
      log(`wrote ${path}`);
    });
}
