import { Command } from "commander";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ServeOptions, registerServe, serveCommand } from "../../cli/serve.js";
import { silentLogger } from "../../serving/app.js";
import { configureDebug, createDebug, isDebugEnabled } from "../../serving/debug.js";
import type { RunningServer } from "../../serving/server.js";
import { trainTinyModel } from "../fixtures/aliccp.js";
import { addVersion, emptyRepository, sampleRows } from "./helpers.js";

let modelDir: string;
const started: RunningServer[] = [];

beforeAll(async () => {
  ({ modelDir } = await trainTinyModel());
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((running) => running.close()));
});

async function serve(path: string, options: ServeOptions) {
  const lines: string[] = [];
  const running = await serveCommand(path, { port: 0, logger: silentLogger, print: (line) => lines.push(line), ...options });
  started.push(running);
  return { running, output: lines.join("\n") };
}

/** Parses `onnxrec serve` arguments and returns the options that the action would receive. */
function parseServeArgs(args: string[]): ServeOptions {
  const program = new Command("onnxrec").exitOverride().configureOutput({ writeErr: () => {} });
  const command = registerServe(program);
  let parsed: ServeOptions = {};
  command.action((_path: string, options: ServeOptions) => {
    parsed = options;
  });
  program.parse(["serve", ...args], { from: "user" });
  return parsed;
}

describe("serveCommand", () => {
  it("lists the models of a repository", async () => {
    const root = await emptyRepository();
    await addVersion(root, "alpha", 1, modelDir);
    await addVersion(root, "alpha", 2, modelDir);
    await addVersion(root, "beta", 7, modelDir);
    const { running, output } = await serve(root, { pollInterval: 0 });
    expect(output).toContain(`Serving repository ${root} at ${running.url}`);
    expect(output).toContain('model "alpha" (ple, tasks ctr, cvr), versions 1, 2');
    expect(output).toContain('model "beta" (ple, tasks ctr, cvr), versions 7');
    expect(output).toContain("new versions: not scanned (--poll-interval 0)");
    expect(output).toContain("micro-batching: up to 256 rows per run, no queue delay");
  });

  it("turns batching off", async () => {
    const { running, output } = await serve(modelDir, { batching: false, name: "tiny" });
    expect(running.model.batching.maxBatchSize).toBe(1);
    expect(output).toContain("micro-batching: off");
    const res = await fetch(`${running.url}/v1/models/tiny:predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ instances: sampleRows().slice(0, 3) }),
    });
    expect(res.status).toBe(200);
  });

  it("leaves out the web page with --no-web", async () => {
    const options = parseServeArgs([modelDir, "--no-web", "--port", "0", "--name", "tiny"]);
    expect(options.web).toBe(false);
    const { running, output } = await serve(modelDir, options);
    expect(output).toContain("web page: off (--no-web)");
    for (const path of ["/", "/web/main.js", "/models", "/models/tiny/1/model.json"]) {
      const res = await fetch(`${running.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: string }).error, path).toBe(`no route for GET ${path}`);
    }
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
  });

  it("serves the web page by default", async () => {
    const { running, output } = await serve(modelDir, parseServeArgs([modelDir, "--port", "0", "--name", "tiny"]));
    expect(output).toContain(`web page: ${running.url}/`);
    const res = await fetch(`${running.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
  });

  it("applies batching and CORS options", async () => {
    const { running } = await serve(modelDir, {
      name: "tiny",
      maxBatchSize: 8,
      maxQueueDelayMs: 4,
      maxQueueRows: 100,
      maxConcurrentBatches: 2,
      cors: "https://app.example",
    });
    expect(running.model.batching).toEqual({ maxBatchSize: 8, maxQueueDelayMs: 4, maxQueueRows: 100, maxConcurrentBatches: 2 });
    const res = await fetch(`${running.url}/v2/health/live`, { headers: { Origin: "https://app.example" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
  });
});

describe("serve arguments", () => {
  it("reads the serving options", () => {
    const options = parseServeArgs([
      "models",
      "--poll-interval",
      "0.5",
      "--max-batch-size",
      "64",
      "--max-queue-delay-ms",
      "1.5",
      "--max-queue-rows",
      "1000",
      "--no-batching",
      "--cors",
      "https://a.example,https://b.example",
      "--debug",
    ]);
    expect(options).toMatchObject({
      pollInterval: 0.5,
      maxBatchSize: 64,
      maxQueueDelayMs: 1.5,
      maxQueueRows: 1000,
      batching: false,
      cors: "https://a.example,https://b.example",
      debug: true,
    });
  });

  it("has batching on and polling every 5 s by default", () => {
    expect(parseServeArgs(["models"])).toMatchObject({
      batching: true,
      web: true,
      pollInterval: 5,
      maxBatchSize: 256,
      maxQueueDelayMs: 0,
      maxQueueRows: 8192,
    });
  });

  it.each([
    [["--max-batch-size", "0"], "max-batch-size must be an integer from 1"],
    [["--poll-interval", "-1"], "poll-interval must be a non-negative number of seconds"],
    [["--max-queue-delay-ms", "soon"], "max-queue-delay-ms must be a non-negative number of milliseconds"],
  ])("rejects %j", (args, message) => {
    expect(() => parseServeArgs(["models", ...args])).toThrow(message);
  });
});

describe("debug logger", () => {
  afterEach(() => {
    configureDebug({ patterns: "", write: (line) => process.stderr.write(`${line}\n`) });
  });

  it("is off by default", () => {
    configureDebug({ patterns: "" });
    expect(isDebugEnabled("onnxrec:batcher")).toBe(false);
    expect(createDebug("onnxrec:batcher").enabled).toBe(false);
  });

  it("matches namespaces with wildcards and exclusions", () => {
    configureDebug({ patterns: "onnxrec:*,-onnxrec:repository" });
    expect(isDebugEnabled("onnxrec:batcher")).toBe(true);
    expect(isDebugEnabled("onnxrec:repository")).toBe(false);
    expect(isDebugEnabled("express:router")).toBe(false);
    configureDebug({ patterns: "*" });
    expect(isDebugEnabled("express:router")).toBe(true);
  });

  it("writes namespaced lines with fields", () => {
    const lines: string[] = [];
    configureDebug({ patterns: "onnxrec:test", write: (line) => lines.push(line) });
    const debug = createDebug("onnxrec:test");
    debug("hello", { rows: 3 });
    createDebug("onnxrec:other")("hidden");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+ onnxrec:test hello \{"rows":3\}$/);
  });

  it("is turned on by --debug", async () => {
    configureDebug({ patterns: "" });
    await serve(modelDir, { name: "tiny", debug: true });
    expect(isDebugEnabled("onnxrec:batcher")).toBe(true);
  });
});
