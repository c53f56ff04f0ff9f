/**
 * Opens the page at GET / in Chromium, scores rows with onnxruntime-web in
 * the browser and compares the scores with the server's predict route.
 * Skipped where /usr/bin/chromium is missing; .ci/run installs it.
 * Set ONNXREC_WEB_SCREENSHOT to a .png path to save the page after scoring.
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type BrowserContext, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../../serving/server.js";
import { FeatureError } from "../../training/features.js";
import { temporaryDir, trainTinyModel } from "../fixtures/aliccp.js";
import { type Row, addVersion, emptyRepository, sampleRows } from "./helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const HAS_CHROMIUM = existsSync(CHROMIUM);
const TOLERANCE = 1e-5;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

type Scores = Record<string, number>;
interface PageScores {
  model: string;
  version: number;
  backend: string;
  tasks: string[];
  scores: Scores[];
}

let modelDir: string;
let running: RunningServer;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

async function serverScores(rows: readonly Row[], server = running, name = running.model.name): Promise<Scores[]> {
  const response = await fetch(`${server.url}/v1/models/${name}:predict`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ instances: rows }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { predictions: Scores[] }).predictions;
}

/** Clicks a scoring button and waits until the page has finished that run. */
async function clickAndWait(button: string, on = page): Promise<string> {
  const done = Number(await on.locator("body").getAttribute("data-runs")) + 1;
  await on.getByRole("button", { name: button }).click();
  await on.waitForFunction((n) => document.body.dataset.runs === String(n), done);
  return (await on.locator("body").getAttribute("data-outcome")) ?? "";
}

async function pageScores(on = page): Promise<PageScores> {
  return JSON.parse((await on.locator("#scores-json").textContent()) ?? "null") as PageScores;
}

/** Returns the largest difference between two lists of scores, checking that they cover the same rows and tasks. */
function maxDifference(actual: readonly Scores[], expected: readonly Scores[]): number {
  expect(actual).toHaveLength(expected.length);
  let max = 0;
  expected.forEach((row, i) => {
    expect(Object.keys(actual[i])).toEqual(Object.keys(row));
    for (const task of Object.keys(row)) max = Math.max(max, Math.abs(actual[i][task] - row[task]));
  });
  return max;
}

/** Returns the message of the FeatureError that the server's encoder throws for `rows`. */
function featureErrorMessage(rows: readonly Row[]): string {
  try {
    running.model.encoder.encodeRows(rows);
  } catch (error) {
    if (error instanceof FeatureError) return error.message;
    throw error;
  }
  throw new Error("the rows were expected to be invalid");
}

const SKIPPED = `skipped: ${CHROMIUM} not found (apt-get install chromium; .ci/run installs it when run as root)`;
if (!HAS_CHROMIUM) console.warn(`test/serving/browser.test.ts: ${SKIPPED}`);

describe.skipIf(!HAS_CHROMIUM)(HAS_CHROMIUM ? "web page in Chromium" : `web page in Chromium (${SKIPPED})`, () => {
  beforeAll(async () => {
    ({ modelDir } = await trainTinyModel());
    running = await startServer({ modelDir, port: 0, host: "127.0.0.1", quiet: true, handleSignals: false, pollIntervalMs: 0 });
    context = await chromium.launchPersistentContext(await temporaryDir("onnxrec-chromium-"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(running.url);
    await page.waitForFunction(() => document.body.dataset.state !== "loading");
    expect(await page.locator("#status").textContent()).not.toMatch(/^Failed/);
  });

  afterAll(async () => {
    await context?.close();
    await running?.close();
  });

  it("loads the model on wasm, cross-origin isolated", async () => {
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.locator("body").getAttribute("data-state")).toBe("ready");
    expect(await page.locator("#model-picker").isHidden()).toBe(true);
    expect(await page.locator("#status").textContent()).toContain("on wasm");
  });

  it("scores JSON rows as the server does", async () => {
    const samples = sampleRows().slice(-4);
    const unseen: Row = { ...samples[0], "101": "no-such-user", "205": 999_999_999 };
    const missing: Row = { ...samples[1], "121": null, "301": null, D508: null, D853: null };
    const rows = [...samples, unseen, missing];
    await page.locator("#json-rows").fill(`[\n${rows.map((row) => JSON.stringify(row)).join(",\n")}\n]`);
    expect(await clickAndWait("Score JSON rows")).toBe("scored");

    const shown = await pageScores();
    expect(shown.model).toBe(running.model.name);
    expect(shown.tasks).toEqual(["ctr", "cvr"]);
    expect(shown.backend).toMatch(/^wasm/);
    const difference = maxDifference(shown.scores, await serverScores(rows));
    expect(difference).toBeLessThanOrEqual(TOLERANCE);
    // The unseen category is scored with the unseen id, not as the row it was copied from.
    expect(shown.scores[4]).not.toEqual(shown.scores[0]);

    const cells = await page.locator("#scores td[data-task]").evaluateAll((tds) =>
      tds.map((td) => ({ task: (td as HTMLElement).dataset.task, score: Number((td as HTMLElement).dataset.score) })),
    );
    expect(cells).toEqual(shown.scores.flatMap((row) => Object.entries(row).map(([task, score]) => ({ task, score }))));

    const screenshot = process.env.ONNXREC_WEB_SCREENSHOT;
    if (screenshot) {
      await mkdir(dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
    }
  });

  it("scores the edited form row", async () => {
    const example = ((await (await fetch(`${running.url}/models/${running.model.name}/1/example`)).json()) as { instances: Row[] })
      .instances[0];
    // The example row with an unseen category, an empty input (null) and an edited number.
    await page.getByLabel(/^101\b/).fill("no-such-user");
    await page.getByLabel(/^D508\b/).fill("");
    await page.getByLabel(/^D853\b/).fill("0.25");
    expect(await clickAndWait("Score this row")).toBe("scored");
    const row: Row = { ...example, "101": "no-such-user", D508: null, D853: 0.25 };
    const difference = maxDifference((await pageScores()).scores, await serverScores([row]));
    expect(difference).toBeLessThanOrEqual(TOLERANCE);
  });

  it("shows FeatureErrors beside the input", async () => {
    const dense = page.getByLabel(/^D853\b/);
    await dense.fill("abc");
    expect(await clickAndWait("Score this row")).toBe("invalid");
    const nulls: Row = Object.fromEntries(running.model.encoder.features.map((spec) => [spec.name, null]));
    const error = page.locator(`#${await dense.getAttribute("id")}-error`);
    expect(await error.textContent()).toBe(featureErrorMessage([{ ...nulls, D853: "abc" }]));
    expect(await error.textContent()).toContain('field "D853": expected a finite number or null, got "abc"');
    expect(await dense.getAttribute("aria-invalid")).toBe("true");
    await dense.fill("0");

    const rows = sampleRows().slice(0, 2);
    delete rows[1]["121"];
    await page.locator("#json-rows").fill(JSON.stringify(rows));
    expect(await clickAndWait("Score JSON rows")).toBe("invalid");
    expect(await page.locator("#json-error").textContent()).toBe(featureErrorMessage(rows));
    expect(await page.locator("#json-error").textContent()).toContain('row 1: missing field "121"');
    expect(await error.textContent()).toBe("");

    await page.locator("#json-rows").fill("[{");
    expect(await clickAndWait("Score JSON rows")).toBe("invalid");
    expect(await page.locator("#json-error").textContent()).toMatch(/^Invalid JSON: /);
    expect(pageErrors).toEqual([]);
  });

  it("picks among several models", async () => {
    const root = await emptyRepository();
    await addVersion(root, "alpha", 1, modelDir);
    await addVersion(root, "beta", 1, modelDir);
    await addVersion(root, "beta", 2, modelDir);
    const repository = await startServer({ modelDir: root, port: 0, quiet: true, handleSignals: false, pollIntervalMs: 0 });
    const picked = await context.newPage();
    try {
      await picked.goto(`${repository.url}/?model=beta&version=1`);
      await picked.waitForFunction(() => document.body.dataset.state === "ready");
      const options = await picked.locator("#model option").allTextContents();
      expect(options).toEqual(["alpha, version 1 (latest)", "beta, version 2 (latest)", "beta, version 1"]);
      expect(await picked.locator("#model-picker").isVisible()).toBe(true);
      expect(await picked.locator("#status").textContent()).toMatch(/^beta version 1: /);

      await picked.locator("#model").selectOption({ label: "alpha, version 1 (latest)" });
      await picked.waitForFunction(() => document.body.dataset.state === "ready" && document.getElementById("status")!.textContent!.startsWith("alpha"));
      expect(new URL(picked.url()).search).toBe("?model=alpha&version=1");
      const rows = sampleRows().slice(0, 3);
      await picked.locator("#json-rows").fill(JSON.stringify(rows));
      expect(await clickAndWait("Score JSON rows", picked)).toBe("scored");
      const shown = await pageScores(picked);
      expect([shown.model, shown.version]).toEqual(["alpha", 1]);
      expect(maxDifference(shown.scores, await serverScores(rows, repository, "alpha"))).toBeLessThanOrEqual(TOLERANCE);

      // A version whose inference.onnx has gone from disk fails to load, and the previous model's form goes with it.
      await rm(join(root, "beta", "2", "inference.onnx"));
      await picked.locator("#model").selectOption({ label: "beta, version 2 (latest)" });
      await picked.waitForFunction(() => document.body.dataset.state === "error");
      expect(await picked.locator("#status").textContent()).toBe(
        "Failed to load beta version 2: GET models/beta/2/inference.onnx: 404 inference.onnx of model \"beta\" version 2 is no longer on the server",
      );
      expect(await picked.locator("#fields input").count()).toBe(0);
      expect(await picked.locator("#results").isHidden()).toBe(true);
      expect(await picked.getByRole("button", { name: "Score JSON rows" }).isDisabled()).toBe(true);
    } finally {
      await picked.close();
      await repository.close();
    }
  });
});
