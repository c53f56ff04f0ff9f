import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeSafetensors, encodeSafetensors, loadCheckpoint, saveCheckpoint, writeFileAtomic } from "../../training/checkpoint.js";
import { temporaryDir } from "../fixtures/aliccp.js";

describe("safetensors checkpoints", () => {
  const checkpoint = {
    tensors: {
      params: { shape: [5], data: Float32Array.from([1, -2, 3.5, 0, 1e-8]) },
      table: { shape: [2, 3], data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) },
    },
    metadata: { step: "17" },
  };

  it("round-trips tensors and metadata through a file", async () => {
    const path = join(await temporaryDir("onnxrec-ckpt-"), "c.safetensors");
    await saveCheckpoint(path, checkpoint);
    const loaded = await loadCheckpoint(path);
    expect(loaded.metadata).toEqual({ step: "17" });
    expect(Array.from(loaded.tensors.params.data)).toEqual(Array.from(checkpoint.tensors.params.data));
    expect(loaded.tensors.table.shape).toEqual([2, 3]);
    expect(Array.from(loaded.tensors.table.data)).toEqual(Array.from(checkpoint.tensors.table.data));
  });

  it("aligns the data after a header padded to 8 bytes", () => {
    const bytes = encodeSafetensors(checkpoint);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    expect(JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString()).params.data_offsets).toEqual([0, 20]);
  });

  it("rejects a truncated file with a message naming it", async () => {
    const path = join(await temporaryDir("onnxrec-ckpt-"), "bad.safetensors");
    const bytes = encodeSafetensors(checkpoint);
    await writeFile(path, bytes.subarray(0, bytes.length - 4));
    await expect(loadCheckpoint(path)).rejects.toThrow(/bad\.safetensors: tensor "table" has byte range/);
    expect(() => decodeSafetensors(new Uint8Array(3))).toThrow(/not a safetensors file/);
  });

  it("keeps the previous file when a write fails", async () => {
    const dir = await temporaryDir("onnxrec-ckpt-");
    const path = join(dir, "c.safetensors");
    await saveCheckpoint(path, checkpoint);
    const before = await readFile(path);
    const broken = { tensors: { x: { shape: [3], data: new Float32Array(2) } }, metadata: {} };
    await expect(saveCheckpoint(path, broken)).rejects.toThrow(/needs 3 values, has 2/);
    expect(Buffer.compare(await readFile(path), before)).toBe(0);
  });
});

describe("writeFileAtomic", () => {
  it("names the target path and the cause, and leaves no temporary file", async () => {
    const dir = await temporaryDir("onnxrec-write-");
    await mkdir(join(dir, "folder"));
    await expect(writeFileAtomic(join(dir, "folder"), "x")).rejects.toThrow(`cannot write ${join(dir, "folder")}: it is a folder; give a file name (EISDIR)`);
    await expect(writeFileAtomic(join(dir, "missing", "x.onnx"), "x")).rejects.toThrow(
      `cannot write ${join(dir, "missing", "x.onnx")}: its folder does not exist (ENOENT)`,
    );
    await expect(writeFileAtomic("", "x")).rejects.toThrow('cannot write "": expected a file name');
    expect(await readdir(dir)).toEqual(["folder"]);
    expect(await readdir(join(dir, "folder"))).toEqual([]);
  });
});
