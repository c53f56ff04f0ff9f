/**
 * Writes the random choices an onnxrec training run will make, so that
 * rechub_train.py can make the same ones and both frameworks train on the
 * same randomness: the row order of each epoch, and the dropout masks.
 *
 * Row orders: for each epoch, the row indices as little-endian uint32.
 *
 * Dropout masks are replayed from the program's dropout state. The trainer
 * draws them one step after another from that one generator, in the order
 * the model created its dropout inputs. That is also the order in which
 * torch-rechub's forward calls its Dropout modules. File layout: for each
 * step, for each mask, the keep bits of its [rows, width] values in row-major
 * order, packed eight to a byte with the first value in the lowest bit, each
 * mask padded to a whole byte. The JSON index beside it contains the widths,
 * the ratios, the step sizes and the byte count.
 */
import { open, rename } from "node:fs/promises";
import { writeFileAtomic } from "../../training/checkpoint.js";
import type { DataLoader } from "../../training/loader.js";
import { type DropoutState, fillDropoutMask } from "../../training/dropout.js";
import type { DropoutMaskSpec } from "../../graph/layers/context.js";

export interface MaskIndex {
  widths: number[];
  ratios: number[];
  /** Rows of each training step of one epoch. */
  steps: number[];
  epochs: number;
  bytes: number;
}

/** Rows of each step of an epoch that reads `rows` rows in batches of `batchSize`, the last batch short. */
export function stepSizes(rows: number, batchSize: number): number[] {
  const steps: number[] = [];
  for (let start = 0; start < rows; start += batchSize) steps.push(Math.min(batchSize, rows - start));
  return steps;
}

/** Packs a mask's keep bits (value not 0), first value in the lowest bit. */
export function packKeepBits(mask: Float32Array): Uint8Array {
  const packed = new Uint8Array(Math.ceil(mask.length / 8));
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) packed[i >> 3] |= 1 << (i & 7);
  return packed;
}

/**
 * Draws the masks of `epochs` epochs of `steps` from a copy of `state` and
 * writes them to `path`, with the index at `path`.json. Returns the index.
 */
export async function writeDropoutMasks(
  path: string,
  specs: readonly DropoutMaskSpec[],
  state: DropoutState,
  steps: number[],
  epochs: number,
): Promise<MaskIndex> {
  const generator: DropoutState = [...state];
  const partial = `${path}.tmp`;
  const file = await open(partial, "w");
  let bytes = 0;
  try {
    for (const rows of Array.from({ length: epochs }, () => steps).flat()) {
      for (const spec of specs) {
        const mask = new Float32Array(rows * spec.width);
        fillDropoutMask(mask, spec.ratio, generator);
        const packed = packKeepBits(mask);
        await file.write(packed);
        bytes += packed.length;
      }
    }
  } finally {
    await file.close();
  }
  await rename(partial, path);
  const index: MaskIndex = { widths: specs.map((s) => s.width), ratios: specs.map((s) => s.ratio), steps, epochs, bytes };
  await writeFileAtomic(`${path}.json`, JSON.stringify(index));
  return index;
}

/** Writes the row order of `epochs` epochs of `loader`, which must shuffle. */
export async function writeRowOrders(path: string, loader: DataLoader, epochs: number): Promise<void> {
  const orders = new Uint32Array(epochs * loader.rows);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = loader.rowOrder(epoch);
    if (order === null) throw new Error("writeRowOrders: the loader reads rows in file order; give it shuffle: true");
    orders.set(order, epoch * loader.rows);
  }
  await writeFileAtomic(path, new Uint8Array(orders.buffer));
}
