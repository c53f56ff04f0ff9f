/**
 * The script of the page at GET /. It loads a served model's inference.onnx
 * and model.json into onnxruntime-web. It encodes the rows typed into the
 * form or pasted as JSON with the server's own FeatureEncoder, and shows one
 * score per task for each row.
 *
 * serving/routes-web.ts bundles this file with esbuild. onnxruntime-web is
 * not in the bundle: it is imported at run time from the server's
 * /web/ort/ folder, which also contains its .wasm files.
 *
 * For tests and scripts, the latest scores are also in the JSON element
 * #scores-json and in the data-score attributes of the table cells; the body's
 * data-runs counts finished scoring attempts and data-outcome records how the
 * last one ended ("scored", "invalid" or "failed").
 */
import type * as Ort from "onnxruntime-web";
import { FeatureEncoder, FeatureError, type FeatureSpec } from "../../training/features.js";

type OrtModule = typeof Ort;
type Row = Record<string, unknown>;

interface ServedModel {
  name: string;
  version: number;
  latest: boolean;
  tasks: string[];
}

interface ModelJSON {
  tasks: { name: string }[];
  encoder: unknown;
}

interface ActiveModel {
  ort: OrtModule;
  served: ServedModel;
  encoder: FeatureEncoder;
  tasks: string[];
  session: Ort.InferenceSession;
  backend: string;
}

interface Field {
  spec: FeatureSpec;
  input: HTMLInputElement;
  error: HTMLElement;
}

const ORT_DIR = new URL("web/ort/", document.baseURI).href;

const page = {
  picker: element<HTMLElement>("model-picker"),
  select: element<HTMLSelectElement>("model"),
  status: element<HTMLElement>("status"),
  rowForm: element<HTMLFormElement>("row-form"),
  fields: element<HTMLElement>("fields"),
  rowError: element<HTMLElement>("row-error"),
  jsonForm: element<HTMLFormElement>("json-form"),
  jsonRows: element<HTMLTextAreaElement>("json-rows"),
  jsonError: element<HTMLElement>("json-error"),
  results: element<HTMLElement>("results"),
  scoresNote: element<HTMLElement>("scores-note"),
  table: element<HTMLTableElement>("scores"),
  scoresJson: element<HTMLScriptElement>("scores-json"),
};

let models: ServedModel[] = [];
let active: ActiveModel | null = null;
let fields: Field[] = [];
let loads = 0;
let runs = 0;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no element #${id}`);
  return found as T;
}

// onnxruntime-web does not support a second run() while one is in progress.
// Its WebGPU backend rejects it ("Session already started"), and all wasm
// sessions share one WebAssembly instance and its memory. So each run, and
// the release of a replaced session, waits here for the previous one, which
// also keeps the results in the order of the clicks.
let queue: Promise<unknown> = Promise.resolve();

function enqueue<T>(task: () => Promise<T>): Promise<T> {
  const result = queue.then(task, task);
  queue = result.catch(() => undefined);
  return result;
}

/** Builds the error for a failed request, with the server's `error` message when the body has one. */
async function requestError(url: string, response: Response): Promise<Error> {
  const body: unknown = await response.json().catch(() => null);
  const message = (body as { error?: unknown } | null)?.error;
  return new Error(`GET ${url}: ${response.status} ${typeof message === "string" ? message : response.statusText}`);
}

async function fetchJSON<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) throw await requestError(url, response);
  return (await response.json()) as T;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw await requestError(url, response);
  return new Uint8Array(await response.arrayBuffer());
}

async function hasWebGpu(): Promise<boolean> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (gpu === undefined) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

let runtime: Promise<{ ort: OrtModule; webgpu: boolean }> | null = null;

/** Imports onnxruntime-web once: the WebGPU build when the browser has a WebGPU adapter, else the smaller wasm-only build. */
function loadRuntime(): Promise<{ ort: OrtModule; webgpu: boolean }> {
  runtime ??= (async () => {
    const webgpu = await hasWebGpu();
    const file = webgpu ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
    const ort = (await import(ORT_DIR + file)) as OrtModule;
    ort.env.wasm.wasmPaths = ORT_DIR;
    return { ort, webgpu };
  })();
  return runtime;
}

/** Creates a session on WebGPU where the browser has it, and on wasm otherwise or when WebGPU fails. */
async function createSession(bytes: Uint8Array): Promise<{ ort: OrtModule; session: Ort.InferenceSession; backend: string }> {
  const { ort, webgpu } = await loadRuntime();
  if (webgpu) {
    try {
      return { ort, session: await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"] }), backend: "WebGPU" };
    } catch (error) {
      console.warn("onnxruntime-web could not create a WebGPU session; using wasm", error);
    }
  }
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const threads = crossOriginIsolated ? (ort.env.wasm.numThreads ?? 1) : 1;
  return { ort, session, backend: `wasm, ${threads} thread${threads === 1 ? "" : "s"}` };
}

function modelPath(served: ServedModel, file: string): string {
  return `models/${encodeURIComponent(served.name)}/${served.version}/${file}`;
}

function setStatus(text: string, isError = false): void {
  page.status.textContent = text;
  page.status.classList.toggle("error", isError);
}

function setBusy(busy: boolean): void {
  for (const button of Array.from(document.querySelectorAll("button"))) button.disabled = busy || active === null;
}

async function start(): Promise<void> {
  ({ models } = await fetchJSON<{ models: ServedModel[] }>("models"));
  if (models.length === 0) throw new Error("no model is loaded on the server");
  page.select.replaceChildren(
    ...models.map((served, index) => new Option(`${served.name}, version ${served.version}${served.latest ? " (latest)" : ""}`, String(index))),
  );
  const query = new URLSearchParams(location.search);
  const requested = models.findIndex(
    (served) => served.name === query.get("model") && (query.get("version") === null ? served.latest : String(served.version) === query.get("version")),
  );
  page.select.value = String(Math.max(requested, 0));
  page.picker.hidden = models.length === 1;
  page.select.addEventListener("change", () => {
    const served = models[Number(page.select.value)];
    history.replaceState(null, "", `?model=${encodeURIComponent(served.name)}&version=${served.version}`);
    void openModel(served);
  });
  page.rowForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void score([formRow()], "form");
  });
  page.jsonForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void scoreJSON();
  });
  await openModel(models[Number(page.select.value)]);
}

/** Loads a model's files, builds its encoder and session, and fills the form with its example row. */
async function openModel(served: ServedModel): Promise<void> {
  const load = ++loads;
  document.body.dataset.state = "loading";
  setBusy(true);
  setStatus(`Loading ${served.name} version ${served.version}...`);
  try {
    const started = performance.now();
    const [json, example, bytes] = await Promise.all([
      fetchJSON<ModelJSON>(modelPath(served, "model.json")),
      fetchJSON<{ instances: Row[] }>(modelPath(served, "example")),
      fetchBytes(modelPath(served, "inference.onnx")),
    ]);
    const encoder = FeatureEncoder.fromJSON(json.encoder);
    const { ort, session, backend } = await createSession(bytes);
    if (load !== loads) {
      await enqueue(() => session.release());
      return;
    }
    const previous = active;
    active = { ort, served, encoder, tasks: json.tasks.map((task) => task.name), session, backend };
    if (previous !== null) void enqueue(() => previous.session.release());
    renderFields(encoder, example.instances[0] ?? {});
    page.jsonRows.value = formatRows(example.instances);
    clearErrors();
    clearScores();
    const size = bytes.byteLength >= 2 ** 20 ? `${(bytes.byteLength / 2 ** 20).toFixed(1)} MiB` : `${Math.ceil(bytes.byteLength / 1024)} KiB`;
    setStatus(
      `${served.name} version ${served.version}: ${encoder.features.length} features, tasks ${active.tasks.join(", ")}; ` +
        `inference.onnx ${size}, loaded in ${Math.round(performance.now() - started)} ms on ${backend}.`,
    );
    document.body.dataset.state = "ready";
  } catch (error) {
    if (load !== loads) return;
    // The form and the scores belong to the previous model, so they go with it rather than stay beside the new choice.
    const previous = active;
    active = null;
    if (previous !== null) void enqueue(() => previous.session.release());
    fields = [];
    page.fields.replaceChildren();
    clearScores();
    setStatus(`Failed to load ${served.name} version ${served.version}: ${errorText(error)}`, true);
    document.body.dataset.state = "error";
  } finally {
    if (load === loads) setBusy(false);
  }
}

function renderFields(encoder: FeatureEncoder, example: Row): void {
  fields = encoder.features.map((spec, index) => {
    const input = document.createElement("input");
    input.id = `field-${index}`;
    input.name = spec.name;
    input.autocomplete = "off";
    input.spellcheck = false;
    input.placeholder = "null";
    if (spec.kind === "dense") input.inputMode = "decimal";
    const value = Object.hasOwn(example, spec.name) ? example[spec.name] : null;
    input.value = value === null || value === undefined ? "" : String(value);
    const error = document.createElement("p");
    error.id = `field-${index}-error`;
    error.className = "error";
    error.setAttribute("aria-live", "polite");
    input.setAttribute("aria-describedby", error.id);
    return { spec, input, error };
  });
  page.fields.replaceChildren(
    ...fields.map(({ spec, input, error }) => {
      const label = document.createElement("label");
      label.htmlFor = input.id;
      label.textContent = spec.name;
      const kind = document.createElement("small");
      if (spec.kind === "sparse") {
        const known = encoder.vocabulary(spec.name).length;
        kind.textContent = ` ${known} value${known === 1 ? "" : "s"}`;
        label.title = `${spec.name}: ${known} value${known === 1 ? "" : "s"} seen in training; any other value scores as unseen`;
      } else {
        kind.textContent = " number";
      }
      label.append(kind);
      const wrapper = document.createElement("div");
      wrapper.className = "field";
      wrapper.append(label, input, error);
      return wrapper;
    }),
  );
}

function formatRows(rows: readonly Row[]): string {
  return `[\n${rows.map((row) => JSON.stringify(row)).join(",\n")}\n]`;
}

/**
 * Reads the form as one row. An empty input is null, a missing value. A
 * sparse input is a string. A dense input is a number, or the text as typed
 * when it is not a number, so that the encoder's FeatureError names it.
 */
function formRow(): Row {
  return Object.fromEntries(
    fields.map(({ spec, input }) => {
      const text = input.value.trim();
      if (text === "") return [spec.name, null];
      if (spec.kind === "sparse") return [spec.name, text];
      const number = Number(text);
      return [spec.name, Number.isNaN(number) ? text : number];
    }),
  );
}

async function scoreJSON(): Promise<void> {
  let rows: unknown;
  try {
    rows = JSON.parse(page.jsonRows.value);
  } catch (error) {
    clearErrors();
    showError(page.jsonError, page.jsonRows, `Invalid JSON: ${errorText(error)}`);
    finishRun("invalid");
    return;
  }
  if (Array.isArray(rows) && rows.length === 0) {
    clearErrors();
    showError(page.jsonError, page.jsonRows, "Invalid JSON rows: the array is empty; add at least one row object");
    finishRun("invalid");
    return;
  }
  await score(rows as unknown[], "json");
}

async function score(rows: readonly unknown[], source: "form" | "json"): Promise<void> {
  clearErrors();
  const model = active;
  if (model === null) return;
  let encoded: ReturnType<FeatureEncoder["encodeRows"]>;
  try {
    encoded = model.encoder.encodeRows(rows);
  } catch (error) {
    if (!(error instanceof FeatureError)) throw error;
    showFeatureError(error, source);
    finishRun("invalid");
    return;
  }
  document.body.dataset.state = "scoring";
  try {
    const { session } = model;
    const { Tensor } = model.ort;
    const feeds: Record<string, Ort.Tensor> = {};
    if (session.inputNames.includes("sparse_ids")) {
      feeds.sparse_ids = new Tensor("int32", encoded.sparseIds, [encoded.size, model.encoder.sparseNames.length]);
    }
    if (session.inputNames.includes("dense")) {
      feeds.dense = new Tensor("float32", encoded.dense, [encoded.size, model.encoder.denseNames.length]);
    }
    const started = performance.now();
    const outputs = await enqueue(() => session.run(feeds));
    const ms = performance.now() - started;
    const columns = model.tasks.map((task) => Array.from(outputs[task].data as Float32Array));
    const scores = Array.from({ length: encoded.size }, (_, row) => Object.fromEntries(model.tasks.map((task, k) => [task, columns[k][row]])));
    showScores(model, scores, source, ms);
    finishRun("scored");
  } catch (error) {
    const message = `Scoring failed: ${errorText(error)}`;
    showError(source === "form" ? page.rowError : page.jsonError, null, message);
    finishRun("failed");
  }
}

function finishRun(outcome: "scored" | "invalid" | "failed"): void {
  document.body.dataset.state = active === null ? "error" : "ready";
  document.body.dataset.outcome = outcome;
  document.body.dataset.runs = String(++runs);
}

/** Shows a FeatureError next to the form input of its field, or next to the JSON rows. */
function showFeatureError(error: FeatureError, source: "form" | "json"): void {
  if (source === "json") {
    showError(page.jsonError, page.jsonRows, error.message);
    return;
  }
  const field = fields.find(({ spec }) => spec.name === error.field);
  if (field === undefined) {
    showError(page.rowError, null, error.message);
  } else {
    showError(field.error, field.input, error.message);
    field.input.focus();
  }
}

function showError(target: HTMLElement, input: HTMLInputElement | HTMLTextAreaElement | null, message: string): void {
  target.textContent = message;
  input?.setAttribute("aria-invalid", "true");
}

function clearErrors(): void {
  for (const target of [page.rowError, page.jsonError, ...fields.map((field) => field.error)]) target.textContent = "";
  for (const input of [page.jsonRows, ...fields.map((field) => field.input)]) input.removeAttribute("aria-invalid");
}

function clearScores(): void {
  page.results.hidden = true;
  page.table.replaceChildren();
  page.scoresJson.textContent = "null";
}

function showScores(model: ActiveModel, scores: Record<string, number>[], source: "form" | "json", ms: number): void {
  const rows = `${scores.length} row${scores.length === 1 ? "" : "s"}`;
  const from = source === "form" ? "form" : "JSON rows";
  page.scoresNote.textContent = `${rows} from the ${from}, ${model.served.name} version ${model.served.version}, ${model.backend}, ${ms.toFixed(1)} ms`;

  const head = page.table.createTHead();
  head.replaceChildren();
  const headRow = head.insertRow();
  for (const title of ["row", ...model.tasks]) {
    const cell = document.createElement("th");
    cell.scope = "col";
    cell.textContent = title;
    headRow.append(cell);
  }

  const body = document.createElement("tbody");
  scores.forEach((score, index) => {
    const row = body.insertRow();
    row.dataset.row = String(index);
    row.insertCell().textContent = String(index);
    for (const task of model.tasks) {
      const cell = row.insertCell();
      cell.dataset.task = task;
      cell.dataset.score = String(score[task]);
      cell.textContent = score[task].toPrecision(6);
    }
  });
  for (const old of Array.from(page.table.tBodies)) old.remove();
  page.table.append(body);

  page.scoresJson.textContent = JSON.stringify({
    model: model.served.name,
    version: model.served.version,
    backend: model.backend,
    tasks: model.tasks,
    scores,
  });
  page.results.hidden = false;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

start().catch((error: unknown) => {
  setStatus(`Failed to start: ${errorText(error)}`, true);
  document.body.dataset.state = "error";
});
