/**
 * The set of served models: either one model directory (`<dir>/model.json`),
 * served as version 1, or a repository laid out as `<root>/<name>/<version>/`
 * where each version is a positive integer folder with model.json and
 * inference.onnx. Every complete version found is loaded; requests without a
 * version go to the highest one.
 *
 * `reload` rescans the repository. New versions are loaded while the current
 * ones keep serving, then the whole set is swapped in one assignment, and the
 * versions that left are released once their queued and running requests
 * have finished. A version that fails to load is logged, counted in the
 * metrics and retried only after its files change. Version folders are
 * treated as immutable: files changed inside a loaded version are not reloaded.
 */
import { type Dirent, existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { INFERENCE_FILE, MODEL_FILE } from "../training/model-dir.js";
import type { BatchingOptions } from "./batcher.js";
import { createDebug } from "./debug.js";
import { type Logger, errorMessage, logEntry, safeLog, silentLogger } from "./logging.js";
import { ServingMetrics } from "./metrics.js";
import { type LoadedModel, VALID_MODEL_NAME, loadModel } from "./model.js";

export const DEFAULT_POLL_INTERVAL_MS = 5_000;

const VERSION_FOLDER = /^[1-9][0-9]*$/;
const debug = createDebug("onnxrec:repository");

export interface RepositoryOptions {
  /** Model name for a single model directory (default: its base name). Not allowed for a repository. */
  name?: string;
  /** Intra-op threads of each onnxruntime session. */
  threads?: number;
  batching?: BatchingOptions;
  metrics?: ServingMetrics;
  logger?: Logger;
}

/** "model": one model directory; "repository": `<root>/<name>/<version>/`; "fixed": models handed to `fromModels`. */
export type RepositoryLayout = "model" | "repository" | "fixed";

export interface ReloadReport {
  loaded: { name: string; version: number }[];
  unloaded: { name: string; version: number }[];
  failed: { name: string; version: number; error: string }[];
}

interface ModelEntry {
  /** Loaded versions, ascending. */
  versions: readonly number[];
  byVersion: ReadonlyMap<number, LoadedModel>;
  latest: LoadedModel;
}

interface FoundVersion {
  name: string;
  version: number;
  dir: string;
  /** Sizes and modification times of model.json and inference.onnx, or null while one of them is missing. */
  signature: string | null;
}

/** A model version on disk that failed to load. */
export interface LoadFailure {
  name: string;
  version: number;
  error: string;
}

export class ModelRepository {
  readonly metrics: ServingMetrics;
  private snapshot: ReadonlyMap<string, ModelEntry> = new Map();
  private readonly logger: Logger;
  /** Versions on disk that failed to load, by versionKey, with the files' signature at the time; retried when it changes. */
  private readonly failures = new Map<string, LoadFailure & { signature: string }>();
  private reloadChain: Promise<unknown> = Promise.resolve();
  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private closing: Promise<void> | null = null;
  private shutdownStarted = false;

  private constructor(
    readonly layout: RepositoryLayout,
    readonly root: string | null,
    private readonly options: RepositoryOptions,
  ) {
    this.metrics = options.metrics ?? new ServingMetrics();
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * Opens a model directory or a repository and loads its models. Throws when
   * the path is neither, or when no model version could be loaded.
   */
  static async open(path: string, options: RepositoryOptions = {}): Promise<ModelRepository> {
    const root = resolve(path);
    const info = await stat(root).catch((error: unknown) => {
      throw new Error(`cannot open model path ${root}: ${errorMessage(error)}`);
    });
    if (!info.isDirectory()) throw new Error(`cannot open model path ${root}: not a directory`);

    if (existsSync(join(root, MODEL_FILE))) {
      const repository = new ModelRepository("model", root, options);
      const model = await loadModel(root, { ...repository.loadOptions(1), name: options.name ?? basename(root) });
      repository.swap([model]);
      return repository;
    }
    if (options.name !== undefined) {
      throw new Error(
        `${root} is a model repository (no ${MODEL_FILE} in it), so a model name cannot be given: the folder names are the model names`,
      );
    }
    const repository = new ModelRepository("repository", root, options);
    const report = await repository.reload();
    if (repository.snapshot.size === 0) {
      const failures = report.failed.map((failure) => `\n  ${failure.name}/${failure.version}: ${failure.error}`).join("");
      const layouts = `${root}/${MODEL_FILE} or ${root}/<name>/<version>/{${MODEL_FILE},${INFERENCE_FILE}}`;
      throw new Error(`no model could be loaded from ${root}: expected ${layouts}${failures}`);
    }
    return repository;
  }

  /** Serves models that are already loaded; `reload` does nothing. */
  static fromModels(models: readonly LoadedModel[], options: Pick<RepositoryOptions, "logger" | "metrics"> = {}): ModelRepository {
    const repository = new ModelRepository("fixed", null, { ...options, metrics: options.metrics ?? models[0]?.metrics });
    repository.swap(models);
    return repository;
  }

  /** Model names, sorted. */
  get names(): string[] {
    return [...this.snapshot.keys()].sort();
  }

  /**
   * True while the server is not shutting down and serves at least one model
   * whose default version is not released.
   */
  get ready(): boolean {
    if (this.shuttingDown) return false;
    return [...this.snapshot.values()].some((entry) => !entry.latest.released);
  }

  /** True once `close` has been called. */
  get closed(): boolean {
    return this.closing !== null;
  }

  /** True once `beginShutdown` or `close` has been called. */
  get shuttingDown(): boolean {
    return this.shutdownStarted || this.closing !== null;
  }

  /**
   * Marks the start of a graceful shutdown: from now on `ready` is false, so
   * health and readiness checks return 503, while the loaded models keep
   * serving the requests that still arrive until `close`.
   */
  beginShutdown(): void {
    this.shutdownStarted = true;
  }

  /**
   * Returns the load failure of a version on disk. Without `version`, it
   * returns the highest failed version of a model that has none loaded.
   */
  loadFailure(name: string, version?: number): LoadFailure | undefined {
    if (version !== undefined) return this.failures.get(versionKey(name, version));
    if (this.versions(name).length > 0) return undefined;
    const failed = [...this.failures.values()].filter((failure) => failure.name === name);
    return failed.sort((a, b) => b.version - a.version)[0];
  }

  /** Versions of a model on disk that failed to load, ascending, with their errors. */
  failedVersions(name: string): LoadFailure[] {
    return [...this.failures.values()].filter((failure) => failure.name === name).sort((a, b) => a.version - b.version);
  }

  /** Loaded versions of a model, ascending; empty for an unknown model. */
  versions(name: string): readonly number[] {
    return this.lookup(name)?.versions ?? [];
  }

  /** Returns a model version, or its highest version when `version` is omitted; undefined when not loaded. */
  get(name: string, version?: number): LoadedModel | undefined {
    const entry = this.lookup(name);
    if (entry === undefined) return undefined;
    return version === undefined ? entry.latest : entry.byVersion.get(version);
  }

  /** Every loaded model version, by name then version. */
  all(): LoadedModel[] {
    return this.names.flatMap((name) => {
      const entry = this.snapshot.get(name)!;
      return entry.versions.map((version) => entry.byVersion.get(version)!);
    });
  }

  /**
   * Rescans a repository: loads new versions, swaps them in and releases the
   * versions whose folders are gone. Calls run one after the other. A scan
   * error is logged and leaves the served models as they are.
   */
  reload(): Promise<ReloadReport> {
    const next = this.reloadChain.then(() => this.reloadOnce());
    this.reloadChain = next.catch(() => {});
    return next;
  }

  /** Calls `reload` every `intervalMs` milliseconds (from the end of one scan to the start of the next) until `stopPolling` or `close`. */
  startPolling(intervalMs = DEFAULT_POLL_INTERVAL_MS): void {
    if (this.layout !== "repository" || this.closing || this.polling) return;
    if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
      throw new RangeError(`poll interval must be a positive number of milliseconds, got ${intervalMs}`);
    }
    this.polling = true;
    const schedule = () => {
      this.pollTimer = setTimeout(() => {
        this.pollTimer = null;
        this.reload()
          .catch((error: unknown) => safeLog(this.logger, logEntry("error", "model repository reload failed", { error: errorMessage(error) })))
          .finally(() => {
            if (this.polling) schedule();
          });
      }, intervalMs);
      this.pollTimer.unref();
    };
    schedule();
  }

  stopPolling(): void {
    this.polling = false;
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  /** Starts every model's queued requests without waiting for the queue delay; see `LoadedModel.drainQueue`. */
  drainQueues(): Promise<void> {
    return Promise.all(this.all().map((model) => model.drainQueue())).then(() => {});
  }

  /** Stops polling, waits for a reload in progress and releases every model after its requests finish. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopPolling();
      await this.reloadChain;
      await Promise.all(this.all().map((model) => model.release()));
    })();
    return this.closing;
  }

  private lookup(name: string): ModelEntry | undefined {
    return this.snapshot.get(name);
  }

  private loadOptions(version: number) {
    const { threads, batching } = this.options;
    return { version, threads, batching, metrics: this.metrics };
  }

  private async reloadOnce(): Promise<ReloadReport> {
    const report: ReloadReport = { loaded: [], unloaded: [], failed: [] };
    if (this.layout !== "repository" || this.closing) return report;
    let found: FoundVersion[];
    try {
      found = await scanRepository(this.root!, this.logger);
    } catch (error) {
      safeLog(this.logger, logEntry("error", "cannot scan the model repository; the loaded models keep serving", {
        root: this.root,
        error: errorMessage(error),
      }));
      return report;
    }

    const retained: LoadedModel[] = [];
    const added: LoadedModel[] = [];
    const foundKeys = new Set(found.map((v) => versionKey(v.name, v.version)));
    for (const key of this.failures.keys()) {
      if (!foundKeys.has(key)) this.failures.delete(key);
    }
    for (const candidate of found) {
      const current = this.get(candidate.name, candidate.version);
      if (current !== undefined) {
        retained.push(current);
        continue;
      }
      const key = versionKey(candidate.name, candidate.version);
      if (candidate.signature === null || this.failures.get(key)?.signature === candidate.signature) continue;
      debug("loading", { model: candidate.name, version: candidate.version, dir: candidate.dir });
      try {
        const model = await loadModel(candidate.dir, { ...this.loadOptions(candidate.version), name: candidate.name });
        added.push(model);
        this.failures.delete(key);
        report.loaded.push({ name: candidate.name, version: candidate.version });
      } catch (error) {
        this.failures.set(key, { name: candidate.name, version: candidate.version, error: errorMessage(error), signature: candidate.signature });
        this.metrics.loadFailed(candidate.name);
        report.failed.push({ name: candidate.name, version: candidate.version, error: errorMessage(error) });
        safeLog(this.logger, logEntry("error", "model version failed to load; the loaded versions keep serving", {
          model: candidate.name,
          version: candidate.version,
          dir: candidate.dir,
          error: errorMessage(error),
        }));
      }
    }
    if (this.closing) {
      await Promise.all(added.map((model) => model.release()));
      return { ...report, loaded: [] };
    }

    const retainedSet = new Set(retained);
    const removed = this.all().filter((model) => !retainedSet.has(model));
    this.swap([...retained, ...added]);
    for (const model of added) {
      safeLog(this.logger, logEntry("info", "model version loaded", { model: model.name, version: model.version, dir: model.dir }));
    }
    for (const model of removed) {
      report.unloaded.push({ name: model.name, version: model.version });
      safeLog(this.logger, logEntry("info", "model version unloaded", { model: model.name, version: model.version }));
    }
    await Promise.all(removed.map((model) => model.release()));
    return report;
  }

  /** Replaces the served set in one assignment, so a request finds either the old set or the new one. */
  private swap(models: readonly LoadedModel[]): void {
    const byName = new Map<string, LoadedModel[]>();
    for (const model of models) {
      const list = byName.get(model.name) ?? [];
      list.push(model);
      byName.set(model.name, list);
    }
    const next = new Map<string, ModelEntry>();
    for (const [name, list] of byName) {
      list.sort((a, b) => a.version - b.version);
      const byVersion = new Map(list.map((model) => [model.version, model]));
      if (byVersion.size !== list.length) throw new Error(`model "${name}" has two models with the same version`);
      next.set(name, { versions: list.map((model) => model.version), byVersion, latest: list[list.length - 1] });
    }
    const previous = this.snapshot;
    this.snapshot = next;
    for (const [name, entry] of next) this.metrics.defaultVersion.set({ model: name }, entry.latest.version);
    for (const name of previous.keys()) {
      if (!next.has(name)) this.metrics.defaultVersion.remove({ model: name });
    }
  }
}

function versionKey(name: string, version: number): string {
  return `${name}/${version}`;
}

/** Lists `<root>/<name>/<version>/` folders; hidden entries and names that are not valid in a URL are skipped. */
async function scanRepository(root: string, logger: Logger): Promise<FoundVersion[]> {
  const found: FoundVersion[] = [];
  for (const modelEntry of await readdir(root, { withFileTypes: true })) {
    if (modelEntry.name.startsWith(".") || !(await isDirectory(root, modelEntry))) continue;
    const name = modelEntry.name;
    if (!VALID_MODEL_NAME.test(name)) {
      debug("skipping a folder whose name is not a valid model name", { folder: name });
      continue;
    }
    const modelDir = join(root, name);
    let versionEntries: Dirent[];
    try {
      versionEntries = await readdir(modelDir, { withFileTypes: true });
    } catch (error) {
      safeLog(logger, logEntry("warn", "cannot list a model folder", { dir: modelDir, error: errorMessage(error) }));
      continue;
    }
    for (const versionEntry of versionEntries) {
      if (!VERSION_FOLDER.test(versionEntry.name) || !(await isDirectory(modelDir, versionEntry))) continue;
      const version = Number(versionEntry.name);
      if (!Number.isSafeInteger(version)) continue;
      const dir = join(modelDir, versionEntry.name);
      found.push({ name, version, dir, signature: await filesSignature(dir) });
    }
  }
  return found;
}

async function isDirectory(parent: string, entry: Dirent): Promise<boolean> {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  return (await stat(join(parent, entry.name)).catch(() => null))?.isDirectory() ?? false;
}

async function filesSignature(dir: string): Promise<string | null> {
  const parts: string[] = [];
  for (const file of [MODEL_FILE, INFERENCE_FILE]) {
    const info = await stat(join(dir, file)).catch(() => null);
    if (info === null || !info.isFile()) return null;
    parts.push(`${file}:${info.size}:${info.mtimeMs}`);
  }
  return parts.join(";");
}
