/**
 * Structured logs: one JSON object per line, with a level, a message and
 * fields such as the request id.
 */

/** One structured log line. `time` is an ISO 8601 timestamp. */
export interface LogEntry {
  time: string;
  level: "info" | "warn" | "error";
  msg: string;
  [key: string]: unknown;
}

export type Logger = (entry: LogEntry) => void;

/** Writes each entry as one JSON line to stdout. */
export const jsonLogger: Logger = (entry) => {
  process.stdout.write(`${JSON.stringify(entry)}\n`);
};

export const silentLogger: Logger = () => {};

/** Builds a log entry stamped with the current time. */
export function logEntry(level: LogEntry["level"], msg: string, fields: Record<string, unknown> = {}): LogEntry {
  return { time: new Date().toISOString(), level, msg, ...fields };
}

/** Calls the logger so that a throwing logger cannot take a request or the process down with it. */
export function safeLog(logger: Logger, entry: LogEntry): void {
  try {
    logger(entry);
  } catch (error) {
    process.stderr.write(`onnxrec: the logger failed: ${errorMessage(error)}\n`);
  }
}

/** Returns the message of an Error, or the value as a string. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
