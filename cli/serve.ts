/** `onnxrec serve <path>`: serves a model directory or a model repository over HTTP. */
import { type Command, InvalidArgumentError } from "commander";
import type { FeatureEncoder } from "../training/features.js";
import { DEFAULT_BODY_LIMIT, DEFAULT_MAX_INSTANCES, type Logger } from "../serving/app.js";
import {
  type BatchingOptions,
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_MAX_CONCURRENT_BATCHES,
  DEFAULT_MAX_QUEUE_DELAY_MS,
  DEFAULT_MAX_QUEUE_ROWS,
} from "../serving/batcher.js";
import { configureDebug } from "../serving/debug.js";
import { DEFAULT_POLL_INTERVAL_MS } from "../serving/repository.js";
import { DEFAULT_HOST, DEFAULT_PORT, type RunningServer, startServer } from "../serving/server.js";

export interface ServeOptions {
  port?: number;
  host?: string;
  name?: string;
  threads?: number;
  maxInstances?: number;
  bodyLimit?: string;
  /** Seconds between scans of a model repository; 0 turns polling off (default 5). */
  pollInterval?: number;
  maxBatchSize?: number;
  maxQueueDelayMs?: number;
  maxQueueRows?: number;
  maxConcurrentBatches?: number;
  /** False turns micro-batching off, like maxBatchSize 1 (default true). */
  batching?: boolean;
  /** Comma-separated origins allowed by CORS, or "*". */
  cors?: string;
  /** False leaves out the web page at GET / and the model files it loads (default true). */
  web?: boolean;
  /** Turns on the onnxrec:* debug logs on stderr, like DEBUG=onnxrec:*. */
  debug?: boolean;
  logger?: Logger;
  /** Receives the lines printed for the user (default: console.log). */
  print?: (line: string) => void;
}

/** Starts the server and prints its URL, its models and an example request. */
export async function serveCommand(modelPath: string, options: ServeOptions = {}): Promise<RunningServer> {
  const print = options.print ?? console.log;
  if (options.debug) {
    const current = process.env.DEBUG ?? "";
    configureDebug({ patterns: current === "" ? "onnxrec:*" : `${current},onnxrec:*` });
  }
  const batching: BatchingOptions = {
    maxBatchSize: options.batching === false ? 1 : options.maxBatchSize,
    maxQueueDelayMs: options.maxQueueDelayMs,
    maxQueueRows: options.maxQueueRows,
    maxConcurrentBatches: options.maxConcurrentBatches,
  };

  const running = await startServer({
    modelDir: modelPath,
    port: options.port,
    host: options.host,
    name: options.name,
    threads: options.threads,
    maxInstances: options.maxInstances,
    bodyLimit: options.bodyLimit,
    logger: options.logger,
    pollIntervalMs: options.pollInterval === undefined ? undefined : options.pollInterval * 1000,
    batching,
    cors: options.cors,
    web: options.web,
  });

  const { model, repository, url } = running;
  const predictUrl = `${url}/v1/models/${encodeURIComponent(model.name)}:predict`;
  const where = repository.layout === "repository" ? `repository ${repository.root}` : `model directory ${repository.root}`;
  print(`Serving ${where} at ${url}`);
  for (const name of repository.names) {
    const versions = repository.versions(name);
    const latest = repository.get(name)!;
    print(`  model "${name}" (${latest.json.model.kind}, tasks ${latest.taskNames.join(", ")}), versions ${versions.join(", ")}`);
  }
  const { maxBatchSize, maxQueueDelayMs } = model.batching;
  const delay = maxQueueDelayMs > 0 ? `, waiting up to ${maxQueueDelayMs} ms for more rows` : ", no queue delay";
  print(maxBatchSize > 1 ? `  micro-batching: up to ${maxBatchSize} rows per run${delay}` : "  micro-batching: off");
  if (repository.layout === "repository") {
    const seconds = options.pollInterval ?? DEFAULT_POLL_INTERVAL_MS / 1000;
    print(seconds > 0 ? `  new versions: scanned every ${seconds} s` : "  new versions: not scanned (--poll-interval 0)");
  }

  print(`  predict:  POST ${predictUrl}  (V2: POST ${url}/v2/models/${encodeURIComponent(model.name)}/infer)`);
  print(`  metadata: GET ${url}/v1/models/${encodeURIComponent(model.name)}/metadata`);
  print(`  metrics:  GET ${url}/metrics`);
  print(options.web === false ? "  web page: off (--no-web)" : `  web page: ${url}/`);
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

function parseNonNegative(label: string, unit: string) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(number)) {
      throw new InvalidArgumentError(`${label} must be a non-negative number of ${unit}.`);
    }
    return number;
  };
}

/** Adds the `serve` command to a commander program. */
export function registerServe(program: Command): Command {
  return program
    .command("serve")
    .description("serve a model directory or a model repository over HTTP (TensorFlow Serving REST and Open Inference Protocol V2)")
    .argument("<path>", "model directory written by training, or a repository laid out as <path>/<name>/<version>/")
    .option("-p, --port <port>", "TCP port to listen on; 0 picks a free port", parseInteger("port", 0, 65535), DEFAULT_PORT)
    .option("--host <host>", "address to listen on; 0.0.0.0 accepts connections from other machines", DEFAULT_HOST)
    .option("--name <name>", "model name in /v1/models/<name> for a model directory (default: its base name)")
    .option("--threads <n>", "intra-op threads of each onnxruntime session", parseInteger("threads", 1, 1024))
    .option(
      "--max-instances <n>",
      "maximum rows in one predict or infer request",
      parseInteger("max-instances", 1, 1_000_000),
      DEFAULT_MAX_INSTANCES,
    )
    .option("--body-limit <size>", 'maximum request body size, such as "1mb" or "512kb"', DEFAULT_BODY_LIMIT)
    .option(
      "--poll-interval <seconds>",
      "seconds between scans of a repository for new model versions; 0 turns scanning off",
      parseNonNegative("poll-interval", "seconds"),
      DEFAULT_POLL_INTERVAL_MS / 1000,
    )
    .option(
      "--max-batch-size <rows>",
      "maximum rows merged into one onnxruntime run; 1 turns micro-batching off",
      parseInteger("max-batch-size", 1, 1_000_000),
      DEFAULT_MAX_BATCH_SIZE,
    )
    .option(
      "--max-queue-delay-ms <ms>",
      "milliseconds the oldest queued request waits for more rows before its batch runs",
      parseNonNegative("max-queue-delay-ms", "milliseconds"),
      DEFAULT_MAX_QUEUE_DELAY_MS,
    )
    .option(
      "--max-queue-rows <rows>",
      "maximum rows waiting per model version; requests past it get 503",
      parseInteger("max-queue-rows", 1, 100_000_000),
      DEFAULT_MAX_QUEUE_ROWS,
    )
    .option(
      "--max-concurrent-batches <n>",
      "batches of one model version that run at the same time",
      parseInteger("max-concurrent-batches", 1, 1024),
      DEFAULT_MAX_CONCURRENT_BATCHES,
    )
    .option("--no-batching", "run every request on its own (the same as --max-batch-size 1)")
    .option("--no-web", "do not serve the web page at GET / or the files it loads (/web/..., /models and /models/...)")
    .option("--cors <origins>", "comma-separated origins allowed by CORS, such as https://app.example, or *; CORS is off without it")
    .option("--debug", "log batch formation and model loading to stderr (the same as DEBUG=onnxrec:*)")
    .action(async (modelPath: string, options: ServeOptions) => {
      await serveCommand(modelPath, options);
    });
}
