/**
 * Checkpoints in the safetensors format: an 8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range, then
 * the raw little-endian data. Files are written to a temporary name and
 * renamed, so a crash never leaves a half-written checkpoint. Node only.
 */
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  tensors: Record<string, NamedTensor>;
  /** String metadata, stored under the header's "__metadata__" key. */
  metadata: Record<string, string>;
}

/** Serialises tensors to safetensors bytes. */
export function encodeSafetensors(checkpoint: Checkpoint): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: checkpoint.metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(checkpoint.tensors)) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) {
      throw new RangeError(`checkpoint tensor "${name}": shape [${t.shape}] needs ${size} values, has ${t.data.length}`);
    }
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  // The format pads the header with spaces to a multiple of 8 bytes, so the data is aligned.
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const t of Object.values(checkpoint.tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), position);
    position += t.data.byteLength;
  }
  return out;
}

/** Parses safetensors bytes holding F32 tensors; `source` names the file in errors. */
export function decodeSafetensors(bytes: Uint8Array, source = "checkpoint"): Checkpoint {
  if (bytes.length < 8) throw new Error(`${source}: not a safetensors file (${bytes.length} bytes)`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength <= 0 || 8 + headerLength > bytes.length) {
    throw new Error(`${source}: header length ${headerLength} does not fit a file of ${bytes.length} bytes`);
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString("utf8"));
  } catch (error) {
    throw new Error(`${source}: the header is not valid JSON (${(error as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const tensors: Record<string, NamedTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = entry as Record<string, string>;
      continue;
    }
    const info = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (info.dtype !== "F32") throw new Error(`${source}: tensor "${name}" has dtype ${info.dtype}, expected F32`);
    const [begin, end] = info.data_offsets;
    if (!(begin >= 0 && end >= begin && dataStart + end <= bytes.length && (end - begin) % 4 === 0)) {
      throw new Error(`${source}: tensor "${name}" has byte range [${begin}, ${end}) outside the file`);
    }
    // Copy into a fresh buffer: a Node Buffer's slice() is a view into a shared pool, not a copy.
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    const data = new Float32Array(copy.buffer);
    tensors[name] = { shape: info.shape, data };
  }
  return { tensors, metadata };
}

/** Causes of failed writes by Node's error code, for messages that name the target path rather than the temporary file. */
const WRITE_FAILURES: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "it is a folder; give a file name",
  ENOTDIR: "a part of the path is a file, not a folder",
  ENOENT: "its folder does not exist",
  ENOSPC: "no space left on the device",
  EROFS: "the file system is read-only",
};

/**
 * Writes `bytes` to `path` through a temporary file in the same folder and a
 * rename, so a failure leaves any earlier file at `path` whole. The error
 * names `path` and the cause.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  if (path === "" || path.endsWith("/")) throw new Error(`cannot write "${path}": expected a file name`);
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    const code = (error as NodeJS.ErrnoException).code ?? "";
    const cause = WRITE_FAILURES[code];
    throw cause === undefined ? error : new Error(`cannot write ${path}: ${cause} (${code})`, { cause: error });
  }
}

export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(checkpoint));
}

export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  return decodeSafetensors(await readFile(path), path);
}
