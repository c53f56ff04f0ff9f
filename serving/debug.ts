/**
 * Namespaced debug logging, off by default. The DEBUG environment variable
 * (or `configureDebug`) selects namespaces with the syntax of the `debug`
 * package: a comma- or space-separated list where `*` matches any text and a
 * leading `-` excludes, for example `DEBUG=onnxrec:*` or `DEBUG=*,-onnxrec:repository`.
 */

export interface DebugLogger {
  /** Writes one line when the namespace is enabled; `fields` are appended as JSON. */
  (message: string, fields?: Record<string, unknown>): void;
  readonly namespace: string;
  /** True when the current patterns select this namespace. Check it before building costly fields. */
  readonly enabled: boolean;
}

export interface DebugConfig {
  /** Namespace patterns, such as "onnxrec:*". */
  patterns: string;
  /** Receives each line without its trailing newline (default: stderr). */
  write: (line: string) => void;
}

interface CompiledPatterns {
  include: RegExp[];
  exclude: RegExp[];
}

const writeToStderr = (line: string) => {
  process.stderr.write(`${line}\n`);
};

let config: DebugConfig = { patterns: process.env.DEBUG ?? "", write: writeToStderr };
let compiled = compilePatterns(config.patterns);
/** Incremented on each configuration change so that loggers recompute `enabled`. */
let generation = 0;

/** Replaces the patterns and the writer given in `changes`, and returns the previous configuration. */
export function configureDebug(changes: Partial<DebugConfig>): DebugConfig {
  const previous = config;
  config = { ...config, ...changes };
  compiled = compilePatterns(config.patterns);
  generation++;
  return previous;
}

/** True when `namespace` matches an include pattern and no exclude pattern. */
export function isDebugEnabled(namespace: string): boolean {
  if (compiled.exclude.some((pattern) => pattern.test(namespace))) return false;
  return compiled.include.some((pattern) => pattern.test(namespace));
}

/** Creates the logger for one namespace, such as "onnxrec:batcher". */
export function createDebug(namespace: string): DebugLogger {
  let seen = -1;
  let enabled = false;
  const isEnabled = () => {
    if (seen !== generation) {
      enabled = isDebugEnabled(namespace);
      seen = generation;
    }
    return enabled;
  };
  const log = (message: string, fields?: Record<string, unknown>) => {
    if (!isEnabled()) return;
    const suffix = fields === undefined ? "" : ` ${JSON.stringify(fields)}`;
    try {
      config.write(`${new Date().toISOString()} ${namespace} ${message}${suffix}`);
    } catch {
      // A failing debug writer must not fail the request being logged.
    }
  };
  Object.defineProperty(log, "namespace", { value: namespace });
  Object.defineProperty(log, "enabled", { get: isEnabled });
  return log as DebugLogger;
}

function compilePatterns(patterns: string): CompiledPatterns {
  const include: RegExp[] = [];
  const exclude: RegExp[] = [];
  for (const item of patterns.split(/[\s,]+/)) {
    if (item === "" || item === "-") continue;
    const negated = item.startsWith("-");
    const body = negated ? item.slice(1) : item;
    const source = body
      .split("*")
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*");
    (negated ? exclude : include).push(new RegExp(`^${source}$`));
  }
  return { include, exclude };
}
