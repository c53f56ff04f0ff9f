/**
 * Training curves as an SVG line chart: one panel for each task's mean
 * training loss per epoch, and one per validation metric (AUC for
 * classification tasks, MSE for regression tasks), one line per task.
 * Browser-safe: no Node imports.
 */
import type { TaskType } from "../graph/models/model.js";
import { FONT_FAMILY, escapeXml, textWidth } from "../graph/visualize.js";
import type { EpochLog } from "./trainer.js";

export type CurveEpoch = Pick<EpochLog, "epoch" | "trainLoss" | "valMetric" | "improved">;

export interface CurveOptions {
  /**
   * Type of each task, by name: classification tasks share the AUC panel and
   * regression tasks the MSE panel. Without it every task shares one
   * validation panel.
   */
  taskTypes?: Record<string, TaskType>;
  title?: string;
}

/** Tableau 10, a palette whose colours stay distinct for readers with common colour-vision deficiencies. */
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

const MARGIN = 16;
const TITLE_SIZE = 14;
const PANEL_TITLE_SIZE = 12;
const TICK_SIZE = 11;
const AXIS_LABEL_SIZE = 11;
const LEGEND_SIZE = 11;
const PLOT_WIDTH = 360;
const PLOT_HEIGHT = 220;
const PANEL_GAP = 32;
const TICK_LENGTH = 4;
const Y_TICKS = 5;
const X_TICKS = 10;

interface Panel {
  id: string;
  title: string;
  axisLabel: string;
  tasks: string[];
  value: (log: CurveEpoch, task: string) => number;
}

interface Scale {
  low: number;
  high: number;
  ticks: number[];
  decimals: number;
}

function px(value: number): string {
  return String(Math.round(value * 10) / 10);
}

/** Returns the step of 1, 2 or 5 times a power of ten that splits `span` into about `count` parts. */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalised = raw / magnitude;
  for (const factor of [1, 2, 5]) {
    if (normalised <= factor) return factor * magnitude;
  }
  return 10 * magnitude;
}

/** Returns an axis over the finite `values`, widened to multiples of a nice step; [0, 1] when there are none. */
function valueScale(values: number[]): Scale {
  const finite = values.filter(Number.isFinite);
  let min = finite.length > 0 ? Math.min(...finite) : 0;
  let max = finite.length > 0 ? Math.max(...finite) : 1;
  if (max - min < 1e-12) {
    const pad = Math.abs(min) * 0.05 || 0.5;
    min -= pad;
    max += pad;
  }
  const step = niceStep(max - min, Y_TICKS);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks = Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toFixed(decimals)));
  return { low: first * step, high: last * step, ticks, decimals };
}

/** Returns the epoch axis: whole epochs, every epoch up to X_TICKS of them and a nice multiple beyond. */
function epochScale(epochs: number[]): Scale {
  const first = Math.min(...epochs);
  const last = Math.max(...epochs);
  if (first === last) return { low: first - 1, high: first + 1, ticks: [first], decimals: 0 };
  const step = Math.max(1, Math.round(niceStep(last - first, X_TICKS)));
  const ticks: number[] = [];
  for (let epoch = Math.ceil(first / step) * step; epoch <= last; epoch += step) ticks.push(epoch);
  // A little room at both ends keeps the first and last markers off the axes.
  const pad = (last - first) * 0.03;
  return { low: first - pad, high: last + pad, ticks, decimals: 0 };
}

function panelsFor(tasks: string[], taskTypes: Record<string, TaskType> | undefined): Panel[] {
  const panels: Panel[] = [
    { id: "train-loss", title: "Training loss", axisLabel: "mean loss", tasks, value: (log, task) => log.trainLoss[task] },
  ];
  const metric = (log: CurveEpoch, task: string) => log.valMetric[task];
  if (taskTypes === undefined) {
    panels.push({ id: "val-metric", title: "Validation metric", axisLabel: "AUC or MSE", tasks, value: metric });
    return panels;
  }
  const classification = tasks.filter((task) => taskTypes[task] === "classification");
  const regression = tasks.filter((task) => taskTypes[task] === "regression");
  const untyped = tasks.filter((task) => !Object.hasOwn(taskTypes, task));
  if (untyped.length > 0) throw new RangeError(`renderTrainingCurves: taskTypes has no type for task(s) ${untyped.join(", ")}`);
  if (classification.length > 0) {
    panels.push({ id: "val-auc", title: "Validation AUC", axisLabel: "AUC", tasks: classification, value: metric });
  }
  if (regression.length > 0) {
    panels.push({ id: "val-mse", title: "Validation MSE", axisLabel: "MSE", tasks: regression, value: metric });
  }
  return panels;
}

/** Lays out the legend entries left to right, wrapping at `width`; returns each entry's position and the height used. */
function legendLayout(entries: string[], width: number): { positions: [number, number][]; height: number } {
  const line = LEGEND_SIZE + 8;
  const positions: [number, number][] = [];
  let x = 0;
  let y = 0;
  for (const entry of entries) {
    const entryWidth = 28 + textWidth(entry, LEGEND_SIZE) + 20;
    if (x > 0 && x + entryWidth > width) {
      x = 0;
      y += line;
    }
    positions.push([x, y]);
    x += entryWidth;
  }
  return { positions, height: y + line };
}

/** Renders each task's training loss and validation metric per epoch as an SVG document. */
export function renderTrainingCurves(history: readonly CurveEpoch[], options: CurveOptions = {}): string {
  const title = options.title ?? "Training curves";
  if (history.length === 0) {
    const width = MARGIN * 2 + Math.max(textWidth(title, TITLE_SIZE), textWidth("no epochs yet", TICK_SIZE));
    return [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${px(width)}" height="64" viewBox="0 0 ${px(width)} 64" font-family="${escapeXml(FONT_FAMILY)}">`,
      `<rect width="${px(width)}" height="64" fill="#ffffff"/>`,
      `<text x="${MARGIN}" y="${MARGIN + TITLE_SIZE}" font-size="${TITLE_SIZE}" font-weight="bold">${escapeXml(title)}</text>`,
      `<text x="${MARGIN}" y="${MARGIN + TITLE_SIZE + 20}" font-size="${TICK_SIZE}">no epochs yet</text>`,
      "</svg>",
      "",
    ].join("\n");
  }
  const tasks = Object.keys(history[0].trainLoss);
  const color = (task: string) => PALETTE[tasks.indexOf(task) % PALETTE.length];
  const panels = panelsFor(tasks, options.taskTypes);
  const epochs = history.map((log) => log.epoch);
  const xScale = epochScale(epochs);
  const best = [...history].reverse().find((log) => log.improved)?.epoch;

  const yScales = panels.map((panel) => valueScale(history.flatMap((log) => panel.tasks.map((task) => panel.value(log, task)))));
  const tickLabel = (value: number, scale: Scale) => value.toFixed(scale.decimals);
  // Left of each plot: the rotated axis label, then the tick labels, then the ticks.
  const leftSpace = yScales.map(
    (scale) => AXIS_LABEL_SIZE + 10 + Math.max(...scale.ticks.map((t) => textWidth(tickLabel(t, scale), TICK_SIZE))) + TICK_LENGTH + 4,
  );
  const panelWidths = leftSpace.map((left) => left + PLOT_WIDTH + 8);
  const chartWidth = panelWidths.reduce((a, b) => a + b, 0) + PANEL_GAP * (panels.length - 1);

  const legendEntries = [...tasks, ...(best === undefined ? [] : [`best epoch (${best})`])];
  const legend = legendLayout(legendEntries, chartWidth);
  const width = MARGIN * 2 + Math.max(chartWidth, textWidth(title, TITLE_SIZE));
  const legendTop = MARGIN + TITLE_SIZE + 10;
  const panelTop = legendTop + legend.height + 12;
  const plotTop = panelTop + PANEL_TITLE_SIZE + 12;
  const bottomSpace = TICK_LENGTH + TICK_SIZE + 8 + AXIS_LABEL_SIZE + 6;
  const height = plotTop + PLOT_HEIGHT + bottomSpace + MARGIN;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px(width)}" height="${px(height)}" viewBox="0 0 ${px(width)} ${px(height)}" ` +
      `font-family="${escapeXml(FONT_FAMILY)}">`,
    `<rect width="${px(width)}" height="${px(height)}" fill="#ffffff"/>`,
    `<text x="${MARGIN}" y="${MARGIN + TITLE_SIZE}" font-size="${TITLE_SIZE}" font-weight="bold" fill="#202124">${escapeXml(title)}</text>`,
    '<g class="legend">',
  ];
  legendEntries.forEach((entry, i) => {
    const [dx, dy] = legend.positions[i];
    const x = MARGIN + dx;
    const y = legendTop + dy + LEGEND_SIZE / 2;
    const isTask = i < tasks.length;
    const stroke = isTask ? color(entry) : "#5f6368";
    const dash = isTask ? "" : ' stroke-dasharray="4 3"';
    out.push(
      `<line x1="${px(x)}" y1="${px(y)}" x2="${px(x + 22)}" y2="${px(y)}" stroke="${stroke}" stroke-width="2"${dash}/>`,
      `<text x="${px(x + 28)}" y="${px(y + LEGEND_SIZE / 2 - 1)}" font-size="${LEGEND_SIZE}" fill="#202124">${escapeXml(entry)}</text>`,
    );
  });
  out.push("</g>");

  let panelLeft = MARGIN;
  panels.forEach((panel, p) => {
    const yScale = yScales[p];
    const plotLeft = panelLeft + leftSpace[p];
    const plotBottom = plotTop + PLOT_HEIGHT;
    const x = (epoch: number) => plotLeft + ((epoch - xScale.low) / (xScale.high - xScale.low)) * PLOT_WIDTH;
    const y = (value: number) => plotBottom - ((value - yScale.low) / (yScale.high - yScale.low)) * PLOT_HEIGHT;
    out.push(
      `<g class="panel" data-panel="${panel.id}">`,
      `<text x="${px(plotLeft)}" y="${px(panelTop + PANEL_TITLE_SIZE)}" font-size="${PANEL_TITLE_SIZE}" font-weight="bold" fill="#202124">` +
        `${escapeXml(panel.title)}</text>`,
    );
    for (const tick of yScale.ticks) {
      const ty = y(tick);
      out.push(
        `<line x1="${px(plotLeft)}" y1="${px(ty)}" x2="${px(plotLeft + PLOT_WIDTH)}" y2="${px(ty)}" stroke="#e8eaed"/>`,
        `<line x1="${px(plotLeft - TICK_LENGTH)}" y1="${px(ty)}" x2="${px(plotLeft)}" y2="${px(ty)}" stroke="#5f6368"/>`,
        `<text class="tick" x="${px(plotLeft - TICK_LENGTH - 3)}" y="${px(ty + TICK_SIZE / 2 - 1)}" font-size="${TICK_SIZE}" ` +
          `text-anchor="end" fill="#3c4043">${tickLabel(tick, yScale)}</text>`,
      );
    }
    for (const tick of xScale.ticks) {
      const tx = x(tick);
      out.push(
        `<line x1="${px(tx)}" y1="${px(plotBottom)}" x2="${px(tx)}" y2="${px(plotBottom + TICK_LENGTH)}" stroke="#5f6368"/>`,
        `<text class="tick" x="${px(tx)}" y="${px(plotBottom + TICK_LENGTH + TICK_SIZE + 2)}" font-size="${TICK_SIZE}" ` +
          `text-anchor="middle" fill="#3c4043">${tick}</text>`,
      );
    }
    out.push(
      `<path class="axes" d="M${px(plotLeft)},${px(plotTop)} V${px(plotBottom)} H${px(plotLeft + PLOT_WIDTH)}" fill="none" stroke="#5f6368"/>`,
      `<text class="axis-label" x="${px(plotLeft + PLOT_WIDTH / 2)}" y="${px(plotBottom + bottomSpace - 4)}" ` +
        `font-size="${AXIS_LABEL_SIZE}" text-anchor="middle" fill="#202124">epoch</text>`,
      `<text class="axis-label" transform="translate(${px(panelLeft + AXIS_LABEL_SIZE)},${px(plotTop + PLOT_HEIGHT / 2)}) rotate(-90)" ` +
        `font-size="${AXIS_LABEL_SIZE}" text-anchor="middle" fill="#202124">${escapeXml(panel.axisLabel)}</text>`,
    );
    if (best !== undefined) {
      out.push(
        `<line class="best" x1="${px(x(best))}" y1="${px(plotTop)}" x2="${px(x(best))}" y2="${px(plotBottom)}" ` +
          'stroke="#5f6368" stroke-dasharray="4 3"/>',
      );
    }
    for (const task of panel.tasks) {
      let d = "";
      let drawing = false;
      const markers: string[] = [];
      for (const log of history) {
        const value = panel.value(log, task);
        if (!Number.isFinite(value)) {
          drawing = false;
          continue;
        }
        d += `${d === "" ? "" : " "}${drawing ? "L" : "M"}${px(x(log.epoch))},${px(y(value))}`;
        drawing = true;
        markers.push(
          `<circle cx="${px(x(log.epoch))}" cy="${px(y(value))}" r="2.5" fill="${color(task)}">` +
            `<title>${escapeXml(`${task}, epoch ${log.epoch}: ${value.toPrecision(5)}`)}</title></circle>`,
        );
      }
      out.push(
        `<path class="series" data-task="${escapeXml(task)}" d="${d}" fill="none" stroke="${color(task)}" stroke-width="2" ` +
          'stroke-linejoin="round"/>',
        ...markers,
      );
    }
    out.push("</g>");
    panelLeft += panelWidths[p] + PANEL_GAP;
  });
  out.push("</svg>", "");
  return out.join("\n");
}
