/** `onnxrec serve <model-dir>`: serves a model directory over HTTP. */
import { type Command, InvalidArgumentError } from "commander";
import type { FeatureEncoder } from "../training/features.js";
import { DEFAULT_BODY_LIMIT, DEFAULT_MAX_INSTANCES, type Logger } from "../serving/app.js";
import { DEFAULT_HOST, DEFAULT_PORT, type RunningServer, startServer } from "../serving/server.js";

export interface ServeOptions {
  port?: number;
  host?: string;
  name?: string;
  threads?: number;
  maxInstances?: number;
  bodyLimit?: string;
  logger?: Logger;
  /** Receives the lines printed for the user (default: console.log). */
  print?: (line: string) => void;
}

/** Starts the server and prints its URL and an example request. */
export async function serveCommand(modelDir: string, options: ServeOptions = {}): Promise<RunningServer> {
  const print = options.print ?? console.log;
  const running = await startServer({
    modelDir,
    port: options.port,
    host: options.host,
    name: options.name,
    threads: options.threads,
    maxInstances: options.maxInstances,
    bodyLimit: options.bodyLimit,
    logger: options.logger,
  });
  const { model, url } = running;
  const predictUrl = `${url}/v1/models/${encodeURIComponent(model.name)}:predict`;
  print(`Serving model "${model.name}" (${model.json.model.kind}, tasks ${model.taskNames.join(", ")}) at ${url}`);
  print(`  predict:  POST ${predictUrl}  (or POST ${url}/predict)`);
  print(`  metadata: GET ${url}/v1/models/${encodeURIComponent(model.name)}/metadata`);
  print("Example request:");
  print(exampleCurl(predictUrl, model.encoder));
  print("Press Ctrl+C to stop.");
  return running;
}

/**
 * Builds a curl command that scores one instance: each sparse feature takes
 * its most frequent training value and each dense feature 0.
 */
export function exampleCurl(predictUrl: string, encoder: FeatureEncoder): string {
  const instance: Record<string, string | number | null> = {};
  for (const spec of encoder.features) {
    instance[spec.name] = spec.kind === "sparse" ? (encoder.vocabulary(spec.name)[0] ?? null) : 0;
  }
  const body = JSON.stringify({ instances: [instance] });
  return `curl -s -X POST -H 'Content-Type: application/json' -d ${shellQuote(body)} ${shellQuote(predictUrl)}`;
}

/** Quotes a string for a POSIX shell. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function parseInteger(label: string, min: number, max: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < min || number > max) {
      throw new InvalidArgumentError(`${label} must be an integer from ${min} to ${max}.`);
    }
    return number;
  };
}

/** Adds the `serve` command to a commander program. */
export function registerServe(program: Command): Command {
  return program
    .command("serve")
    .description("serve a model directory over HTTP (TensorFlow Serving style predict API)")
    .argument("<model-dir>", "model directory written by training")
    .option("-p, --port <port>", "TCP port to listen on; 0 picks a free port", parseInteger("port", 0, 65535), DEFAULT_PORT)
    .option("--host <host>", "address to listen on; 0.0.0.0 accepts connections from other machines", DEFAULT_HOST)
    .option("--name <name>", "model name in /v1/models/<name> (default: the model directory's base name)")
    .option("--threads <n>", "intra-op threads of the onnxruntime session", parseInteger("threads", 1, 1024))
    .option(
      "--max-instances <n>",
      "maximum instances in one predict request",
      parseInteger("max-instances", 1, 1_000_000),
      DEFAULT_MAX_INSTANCES,
    )
    .option("--body-limit <size>", 'maximum request body size, such as "1mb" or "512kb"', DEFAULT_BODY_LIMIT)
    .action(async (modelDir: string, options: ServeOptions) => {
      await serveCommand(modelDir, options);
    });
}
