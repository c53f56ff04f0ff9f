/**
 * Terminal progress bars for long CLI work. Node only.
 */

import cliProgress from "cli-progress";

export interface ProgressBar {
  /** Sets the amount of work done, in the bar's unit, with optional text shown after the ETA (such as the loss). */
  update(value: number, detail?: string): void;
  /** Draws the final state and releases the terminal line. */
  stop(): void;
}

export interface ProgressBarOptions {
  /** Unit shown after counts and rates (default "rows"). */
  unit?: string;
  /** Stream to draw on (default process.stderr). */
  stream?: NodeJS.WriteStream;
}

const SILENT_BAR: ProgressBar = { update() {}, stop() {} };

/** True when progress output is wanted: stdout is a terminal and ONNXREC_QUIET is not "1". */
export function progressEnabled(): boolean {
  return process.env.ONNXREC_QUIET !== "1" && process.stdout.isTTY === true;
}

/**
 * Starts a progress bar with rate and ETA. Without a `total`, it shows the
 * count, rate and elapsed time only. Returns a bar that does nothing when
 * `progressEnabled()` is false. cli-progress also draws nothing when the
 * stream is not a terminal.
 */
export function progressBar(label: string, total?: number, options: ProgressBarOptions = {}): ProgressBar {
  if (!progressEnabled()) return SILENT_BAR;
  const unit = options.unit ?? "rows";
  const hasTotal = total !== undefined && total > 0;
  const format = hasTotal
    ? `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}{detail}`
    : `${label} {value} ${unit} | {rate} ${unit}/s | {duration_formatted}{detail}`;
  const bar = new cliProgress.SingleBar(
    { format, stream: options.stream ?? process.stderr, hideCursor: true, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  const startedAt = Date.now();
  const rate = (value: number) => {
    const seconds = (Date.now() - startedAt) / 1000;
    return seconds > 0 ? Math.round(value / seconds).toLocaleString("en-US") : "-";
  };
  bar.start(hasTotal ? total : 0, 0, { rate: "-", detail: "" });
  return {
    update(value, detail) {
      bar.update(value, { rate: rate(value), detail: detail ? ` | ${detail}` : "" });
    },
    stop() {
      bar.stop();
    },
  };
}
