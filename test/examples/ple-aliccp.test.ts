import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { trainPleOnAliCcp } from "../../examples/ple-aliccp/train.js";
import { SAMPLE_DIR, temporaryDir } from "../fixtures/aliccp.js";

describe("the PLE tutorial on the Ali-CCP sample", () => {
  it("trains, reports a test AUC per task and writes a model directory", async () => {
    const workDir = await temporaryDir("onnxrec-tutorial-");
    const lines: string[] = [];
    const auc = await trainPleOnAliCcp({ dataDir: SAMPLE_DIR, workDir, nEpoch: 2, log: (line) => lines.push(line) });
    expect(Object.keys(auc)).toEqual(["ctr", "cvr"]);
    for (const value of Object.values(auc)) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThanOrEqual(1);
    }
    expect(existsSync(join(workDir, "model", "inference.onnx"))).toBe(true);
    expect(lines.some((line) => line.startsWith("test AUC"))).toBe(true);
  });
});
