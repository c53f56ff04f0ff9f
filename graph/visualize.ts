/**
 * Draws a model's architecture as an SVG diagram, top to bottom: the inputs,
 * the embedding lookup and concatenation, the model's layers, the towers and
 * the task outputs. The model describes itself with structure(); this file
 * only lays that description out, so it has no model-specific code.
 *
 * Browser-safe: no Node imports. Text is set in a monospace font and its
 * width estimated from a fixed advance per character, so the layout needs no
 * text measurement and boxes are sized before anything is drawn.
 */
import type {
  ModelStructure,
  MultiTaskModel,
  StructureGroup,
  StructureNode,
  StructureRole,
} from "./models/model.js";

export interface VisualizeOptions {
  /** Task names for the outputs and lanes. Default task0, task1, ... */
  taskNames?: readonly string[];
  /** A line under the title, such as the model directory's name. */
  subtitle?: string;
}

/** Monospace fonts, so that textWidth's fixed advance per character holds. */
export const FONT_FAMILY = "'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace";
/**
 * Advance width of one glyph per unit of font size. DejaVu Sans Mono and
 * Menlo advance 0.602 em, Liberation Mono 0.600 em and Consolas 0.550 em, so
 * 0.62 em never underestimates a line in any of them.
 */
const ADVANCE = 0.62;

const TITLE_SIZE = 15;
const SUBTITLE_SIZE = 12;
const SECTION_LABEL_SIZE = 12;
const GROUP_LABEL_SIZE = 11;
const LABEL_SIZE = 12;
const DETAIL_SIZE = 11;
const LINE_GAP = 4;

const MARGIN = 16;
const NODE_PAD_X = 10;
const NODE_PAD_Y = 7;
const NODE_GAP = 12;
const GROUP_PAD = 10;
const LANE_GAP = 28;
const ROW_GAP = 48;
const SECTION_PAD = 12;
const SECTION_GAP = 24;
/** Characters per line of a section label in the left gutter before it wraps. */
const GUTTER_CHARS = 18;
const GUTTER_GAP = 16;

const COLORS: Record<StructureRole, { fill: string; stroke: string }> = {
  input: { fill: "#f1f3f4", stroke: "#80868b" },
  embedding: { fill: "#e8f0fe", stroke: "#4285f4" },
  expert: { fill: "#e6f4ea", stroke: "#34a853" },
  mlp: { fill: "#e6f4ea", stroke: "#34a853" },
  gate: { fill: "#fef7e0", stroke: "#e37400" },
  tower: { fill: "#f3e8fd", stroke: "#a142f4" },
  output: { fill: "#fce8e6", stroke: "#d93025" },
};

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

interface PlacedNode extends Box {
  node: StructureNode;
  row: number;
  /** The x range of the group label above this node, which incoming arrows avoid. */
  labelSpan?: [number, number];
}

interface MeasuredGroup {
  group: StructureGroup;
  columns: number;
  cellWidth: number;
  cellHeight: number;
  labelWidth: number;
  width: number;
  height: number;
}

interface PlacedGroup extends Box {
  measured: MeasuredGroup;
  row: number;
}

interface RowBand {
  top: number;
  bottom: number;
}

/** Returns the estimated width of `text` in FONT_FAMILY at `size` pixels; wide (East Asian) characters count twice. */
export function textWidth(text: string, size: number): number {
  let units = 0;
  for (const char of text) units += char.codePointAt(0)! >= 0x2e80 ? 2 : 1;
  return units * size * ADVANCE;
}

/** Escapes the five characters XML reserves, for text content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** Rounds a coordinate to 0.1 px so the SVG stays short. */
function px(value: number): string {
  return String(Math.round(value * 10) / 10);
}

function lineHeight(size: number): number {
  return size + LINE_GAP;
}

function nodeSize(node: StructureNode): { width: number; height: number } {
  const widths = [textWidth(node.label, LABEL_SIZE), ...node.details.map((line) => textWidth(line, DETAIL_SIZE))];
  return {
    width: Math.max(...widths) + 2 * NODE_PAD_X,
    height: 2 * NODE_PAD_Y + lineHeight(LABEL_SIZE) + node.details.length * lineHeight(DETAIL_SIZE) - LINE_GAP,
  };
}

function measureGroup(group: StructureGroup): MeasuredGroup {
  if (group.nodes.length === 0) throw new RangeError(`visualize: group "${group.id}" has no nodes`);
  const sizes = group.nodes.map(nodeSize);
  const cellWidth = Math.max(...sizes.map((s) => s.width));
  const cellHeight = Math.max(...sizes.map((s) => s.height));
  const columns = Math.max(1, Math.min(group.columns ?? group.nodes.length, group.nodes.length));
  const lines = Math.ceil(group.nodes.length / columns);
  const innerWidth = columns * cellWidth + (columns - 1) * NODE_GAP;
  const innerHeight = lines * cellHeight + (lines - 1) * NODE_GAP;
  if (group.label === undefined) {
    return { group, columns, cellWidth, cellHeight, labelWidth: 0, width: innerWidth, height: innerHeight };
  }
  const labelWidth = textWidth(group.label, GROUP_LABEL_SIZE);
  return {
    group,
    columns,
    cellWidth,
    cellHeight,
    labelWidth,
    width: Math.max(innerWidth, labelWidth) + 2 * GROUP_PAD,
    height: innerHeight + 2 * GROUP_PAD + lineHeight(GROUP_LABEL_SIZE),
  };
}

/** Splits `text` at spaces into lines of at most `chars` characters; a longer word gets a line of its own. */
function wrapWords(text: string, chars: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= chars) {
      lines[last] += ` ${word}`;
    } else {
      lines.push(word);
    }
  }
  return lines;
}

function groupsWidth(groups: readonly MeasuredGroup[]): number {
  return groups.reduce((total, g) => total + g.width, 0) + Math.max(0, groups.length - 1) * LANE_GAP;
}

/** Draws `model`'s architecture as a standalone SVG document. */
export function visualizeModel(model: MultiTaskModel, options: VisualizeOptions = {}): string {
  return renderStructure(model.structure(options.taskNames), { subtitle: options.subtitle });
}

interface TitleLine {
  text: string;
  size: number;
  bold: boolean;
}

interface Lanes {
  order: string[];
  width: Map<string, number>;
  left: Map<string, number>;
  total: number;
  /** Width of the widest row without lanes. */
  freeWidth: number;
}

interface Layout {
  width: number;
  height: number;
  titleLines: TitleLine[];
  sections: { box: Box; label: string[] }[];
  groups: PlacedGroup[];
  nodes: PlacedNode[];
  bands: RowBand[];
}

/** Measures the lanes: each lane is as wide as the widest content that any row puts into it. */
function measureLanes(measuredRows: MeasuredGroup[][]): Lanes {
  const lanes: Lanes = { order: [], width: new Map(), left: new Map(), total: 0, freeWidth: 0 };
  measuredRows.forEach((groups, r) => {
    const laned = groups.filter((g) => g.group.lane !== undefined);
    if (laned.length > 0 && laned.length < groups.length) {
      throw new RangeError(`visualize: row ${r} mixes groups with and without a lane; give every group of the row a lane`);
    }
    if (laned.length === 0) {
      lanes.freeWidth = Math.max(lanes.freeWidth, groupsWidth(groups));
      return;
    }
    for (const lane of new Set(laned.map((g) => g.group.lane!))) {
      if (!lanes.width.has(lane)) lanes.order.push(lane);
      const width = groupsWidth(laned.filter((g) => g.group.lane === lane));
      lanes.width.set(lane, Math.max(lanes.width.get(lane) ?? 0, width));
    }
  });
  const widths = lanes.order.map((lane) => lanes.width.get(lane)!);
  lanes.total = widths.reduce((a, b) => a + b, 0) + Math.max(0, widths.length - 1) * LANE_GAP;
  return lanes;
}

/** Places the groups of one row side by side: each lane's groups centred in their lane, the others centred in the content. */
function placeRow(groups: MeasuredGroup[], row: number, top: number, lanes: Lanes, content: { left: number; width: number }): PlacedGroup[] {
  const byLane = new Map<string | undefined, MeasuredGroup[]>();
  for (const g of groups) byLane.set(g.group.lane, [...(byLane.get(g.group.lane) ?? []), g]);
  const placed: PlacedGroup[] = [];
  for (const [lane, members] of byLane) {
    const spanLeft = lane === undefined ? content.left : lanes.left.get(lane)!;
    const spanWidth = lane === undefined ? content.width : lanes.width.get(lane)!;
    let x = spanLeft + (spanWidth - groupsWidth(members)) / 2;
    for (const measured of members) {
      placed.push({ measured, row, x, y: top, width: measured.width, height: measured.height });
      x += measured.width + LANE_GAP;
    }
  }
  return placed;
}

/** Places each group's nodes on a grid of equal cells, below the group's label when it has one. */
function placeNodes(groups: PlacedGroup[]): PlacedNode[] {
  const nodes: PlacedNode[] = [];
  for (const g of groups) {
    const m = g.measured;
    const framed = m.group.label !== undefined;
    const innerLeft = g.x + (framed ? GROUP_PAD : 0);
    const innerTop = g.y + (framed ? GROUP_PAD + lineHeight(GROUP_LABEL_SIZE) : 0);
    m.group.nodes.forEach((node, i) => {
      const column = i % m.columns;
      const line = Math.floor(i / m.columns);
      const placed: PlacedNode = {
        node,
        row: g.row,
        x: innerLeft + column * (m.cellWidth + NODE_GAP),
        y: innerTop + line * (m.cellHeight + NODE_GAP),
        width: m.cellWidth,
        height: m.cellHeight,
      };
      if (framed && line === 0) placed.labelSpan = [g.x + GROUP_PAD, g.x + GROUP_PAD + m.labelWidth];
      nodes.push(placed);
    });
  }
  return nodes;
}

/**
 * Lays out a structure: the title on top, then one band per section with
 * its label in a left gutter and its rows separated by ROW_GAP.
 */
function layoutStructure(structure: ModelStructure, subtitle: string | undefined): Layout {
  const measuredRows = structure.sections.flatMap((section) => section.rows.map((row) => row.groups.map(measureGroup)));
  const lanes = measureLanes(measuredRows);
  const contentWidth = Math.max(lanes.total, lanes.freeWidth);

  const sectionLabels = structure.sections.map((section) => wrapWords(section.label, GUTTER_CHARS));
  const gutterWidth = Math.max(0, ...sectionLabels.flat().map((line) => textWidth(line, SECTION_LABEL_SIZE)));
  const titleLines: TitleLine[] = [{ text: structure.title, size: TITLE_SIZE, bold: true }];
  if (subtitle) titleLines.push({ text: subtitle, size: SUBTITLE_SIZE, bold: false });
  const titleHeight = titleLines.reduce((total, line) => total + lineHeight(line.size), 0);
  const titleWidth = Math.max(...titleLines.map((line) => textWidth(line.text, line.size)));

  const bandLeft = MARGIN;
  const content = { left: bandLeft + SECTION_PAD + gutterWidth + GUTTER_GAP, width: contentWidth };
  const bandWidth = content.left + contentWidth + SECTION_PAD - bandLeft;
  let cursor = content.left + (contentWidth - lanes.total) / 2;
  for (const lane of lanes.order) {
    lanes.left.set(lane, cursor);
    cursor += lanes.width.get(lane)! + LANE_GAP;
  }

  const groups: PlacedGroup[] = [];
  const bands: RowBand[] = [];
  const sections: Layout["sections"] = [];
  let y = MARGIN + titleHeight + SECTION_GAP / 2;
  let row = 0;
  structure.sections.forEach((section, s) => {
    const top = y;
    y += SECTION_PAD;
    section.rows.forEach((_, i) => {
      if (i > 0) y += ROW_GAP;
      const height = Math.max(0, ...measuredRows[row].map((g) => g.height));
      bands.push({ top: y, bottom: y + height });
      groups.push(...placeRow(measuredRows[row], row, y, lanes, content));
      y += height;
      row++;
    });
    const labelHeight = sectionLabels[s].length * lineHeight(SECTION_LABEL_SIZE);
    y = Math.max(y, top + SECTION_PAD + labelHeight) + SECTION_PAD;
    sections.push({ box: { x: bandLeft, y: top, width: bandWidth, height: y - top }, label: sectionLabels[s] });
    y += SECTION_GAP;
  });

  return {
    width: Math.max(bandLeft + bandWidth, MARGIN + titleWidth) + MARGIN,
    height: y - SECTION_GAP + MARGIN,
    titleLines,
    sections,
    groups,
    nodes: placeNodes(groups),
    bands,
  };
}

/**
 * Lays out a model structure as an SVG document. Groups with the same lane
 * share a column across rows, lanes in order of first appearance; rows
 * without lanes are centred. Arrows run from the bottom of each input to the
 * top of the node that reads it.
 *
 * NOTE: arrows are routed for inputs in the row directly above the node
 * that reads them. An arrow from further up is drawn straight across the
 * rows between, so it may cross their boxes. The built-in models only
 * connect adjacent rows.
 */
export function renderStructure(structure: ModelStructure, options: { subtitle?: string } = {}): string {
  const layout = layoutStructure(structure, options.subtitle);
  const width = px(layout.width);
  const height = px(layout.height);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="${escapeXml(FONT_FAMILY)}">`,
    "<defs>",
    '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto">',
    '<path d="M0,1 L10,5 L0,9 z" fill="#5f6368"/>',
    "</marker>",
    "</defs>",
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  out.push(...drawTitle(layout.titleLines));
  out.push(...drawSections(layout.sections));
  const framed = layout.groups.filter((g) => g.measured.group.label !== undefined);
  out.push(...framed.map(drawGroupFrame));
  out.push(...drawEdges(layout.nodes, layout.groups, layout.bands));
  // Group labels go over the arrows, with a white halo in case an arrow passes behind one.
  out.push(...framed.map(drawGroupLabel));
  for (const node of layout.nodes) out.push(...drawNode(node));
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function drawTitle(lines: TitleLine[]): string[] {
  const out: string[] = [];
  let baseline = MARGIN;
  for (const line of lines) {
    baseline += line.size;
    const weight = line.bold ? ' font-weight="bold"' : "";
    out.push(`<text x="${MARGIN}" y="${px(baseline)}" font-size="${line.size}"${weight} fill="#202124">${escapeXml(line.text)}</text>`);
    baseline += LINE_GAP;
  }
  return out;
}

function drawSections(sections: Layout["sections"]): string[] {
  const out: string[] = [];
  for (const { box, label } of sections) {
    out.push(
      '<g class="section">',
      `<rect x="${px(box.x)}" y="${px(box.y)}" width="${px(box.width)}" height="${px(box.height)}" rx="8" fill="#f8f9fa" stroke="#dadce0"/>`,
    );
    label.forEach((line, i) => {
      const baseline = box.y + SECTION_PAD + SECTION_LABEL_SIZE + i * lineHeight(SECTION_LABEL_SIZE);
      out.push(
        `<text x="${px(box.x + SECTION_PAD)}" y="${px(baseline)}" font-size="${SECTION_LABEL_SIZE}" font-weight="bold" fill="#3c4043">` +
          `${escapeXml(line)}</text>`,
      );
    });
    out.push("</g>");
  }
  return out;
}

function drawGroupFrame(g: PlacedGroup): string {
  return (
    `<rect class="group" data-id="${escapeXml(g.measured.group.id)}" x="${px(g.x)}" y="${px(g.y)}" width="${px(g.width)}" ` +
    `height="${px(g.height)}" rx="6" fill="#ffffff" fill-opacity="0.6" stroke="#9aa0a6" stroke-dasharray="4 3"/>`
  );
}

function drawGroupLabel(g: PlacedGroup): string {
  return (
    `<text class="group-label" x="${px(g.x + GROUP_PAD)}" y="${px(g.y + GROUP_PAD + GROUP_LABEL_SIZE - 2)}" ` +
    `font-size="${GROUP_LABEL_SIZE}" fill="#5f6368" stroke="#ffffff" stroke-width="3" paint-order="stroke">` +
    `${escapeXml(g.measured.group.label!)}</text>`
  );
}

/** Draws a node's box with its label in bold and its details below, centred, and its id and details as a tooltip. */
function drawNode(p: PlacedNode): string[] {
  const { fill, stroke } = COLORS[p.node.role];
  const centre = px(p.x + p.width / 2);
  const out = [
    `<g class="node ${p.node.role}" data-id="${escapeXml(p.node.id)}">`,
    `<title>${escapeXml([p.node.id, ...p.node.details].join("\n"))}</title>`,
    `<rect x="${px(p.x)}" y="${px(p.y)}" width="${px(p.width)}" height="${px(p.height)}" rx="4" fill="${fill}" stroke="${stroke}"/>`,
  ];
  let baseline = p.y + NODE_PAD_Y + LABEL_SIZE - 1;
  out.push(
    `<text x="${centre}" y="${px(baseline)}" font-size="${LABEL_SIZE}" font-weight="bold" text-anchor="middle" fill="#202124">` +
      `${escapeXml(p.node.label)}</text>`,
  );
  for (const line of p.node.details) {
    baseline += lineHeight(DETAIL_SIZE);
    out.push(
      `<text x="${centre}" y="${px(baseline)}" font-size="${DETAIL_SIZE}" text-anchor="middle" fill="#3c4043">${escapeXml(line)}</text>`,
    );
  }
  out.push("</g>");
  return out;
}

/** Spreads `count` points over [left, right], away from its ends. */
function spread(left: number, right: number, count: number): number[] {
  const width = right - left;
  return Array.from({ length: count }, (_, i) => left + width * (0.2 + (0.6 * (i + 0.5)) / count));
}

interface Edge {
  from: Box & { row: number };
  to: PlacedNode;
  /** The id of the source node or group. */
  id: string;
  /** X coordinate at which the arrow leaves the bottom of its source. */
  x1: number;
  /** X coordinate at which the arrow enters the top of its node. */
  x2: number;
}

/**
 * Returns where `count` arrows enter the top of a node: spread over its
 * middle, or right of the group label above the node when the label reaches
 * into that middle, so the arrows do not run through the label's text. A
 * label that covers the whole node leaves the middle (and the label's halo).
 */
function arrivalPoints(node: PlacedNode, count: number): number[] {
  const clear = node.labelSpan === undefined ? -Infinity : node.labelSpan[1] + 8;
  const right = node.x + node.width - 10;
  if (clear <= node.x + node.width * 0.2 || clear >= right) return spread(node.x, node.x + node.width, count);
  const end = Math.max(node.x + node.width * 0.8, clear + 10);
  return Array.from({ length: count }, (_, i) => clear + ((end - clear) * (i + 0.5)) / count);
}

/**
 * Draws one arrow per (input, node) pair. Each arrow drops straight from its
 * source to the bottom of the source's row, crosses the gap between rows as
 * a curve, and drops straight into the node, so lines never run over boxes
 * in the rows they connect. Arrows leave and enter boxes at points spread in
 * the order of the other end's x, which keeps them from crossing near boxes.
 */
function drawEdges(nodes: PlacedNode[], groups: PlacedGroup[], bands: RowBand[]): string[] {
  const sources = new Map<string, Box & { row: number }>();
  for (const g of groups) sources.set(g.measured.group.id, g);
  for (const n of nodes) {
    if (sources.has(n.node.id)) throw new RangeError(`visualize: the id "${n.node.id}" is used twice; ids must be unique`);
    sources.set(n.node.id, n);
  }

  const edges: Edge[] = [];
  for (const to of nodes) {
    for (const input of to.node.inputs) {
      const from = sources.get(input);
      if (from === undefined) {
        throw new RangeError(`visualize: input "${input}" of node "${to.node.id}" not found; list the id of a node or group of the structure`);
      }
      edges.push({ from, to, id: input, x1: 0, x2: 0 });
    }
  }

  // Ports: where each arrow leaves its source and enters its node.
  const centre = (b: Box) => b.x + b.width / 2;
  const bySource = new Map<Box, Edge[]>();
  const byTarget = new Map<PlacedNode, Edge[]>();
  for (const e of edges) {
    bySource.set(e.from, [...(bySource.get(e.from) ?? []), e]);
    byTarget.set(e.to, [...(byTarget.get(e.to) ?? []), e]);
  }
  for (const [box, list] of bySource) {
    list.sort((a, b) => centre(a.to) - centre(b.to));
    spread(box.x, box.x + box.width, list.length).forEach((x, i) => (list[i].x1 = x));
  }
  for (const [node, list] of byTarget) {
    list.sort((a, b) => centre(a.from) - centre(b.from));
    arrivalPoints(node, list.length).forEach((x, i) => (list[i].x2 = x));
  }

  const out: string[] = ['<g class="edges" fill="none" stroke="#5f6368" stroke-width="1.2">'];
  for (const e of edges) {
    const y1 = e.from.y + e.from.height;
    const y2 = e.to.y;
    const leave = bands[e.from.row].bottom;
    const enter = bands[e.to.row].top;
    const middle = (leave + enter) / 2;
    let d = `M${px(e.x1)},${px(y1)}`;
    if (leave - y1 >= 0.5) d += ` L${px(e.x1)},${px(leave)}`;
    d += ` C${px(e.x1)},${px(middle)} ${px(e.x2)},${px(middle)} ${px(e.x2)},${px(enter)}`;
    if (y2 - enter >= 0.5) d += ` L${px(e.x2)},${px(y2)}`;
    out.push(`<path d="${d}" marker-end="url(#arrow)" data-from="${escapeXml(e.id)}" data-to="${escapeXml(e.to.node.id)}"/>`);
  }
  out.push("</g>");
  return out;
}
