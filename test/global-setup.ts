import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The folder under which tests create their temporary files; emptied before and after a run. */
export const TEST_ROOT = join(tmpdir(), "onnxrec-tests");

export default function setup() {
  rmSync(TEST_ROOT, { recursive: true, force: true });
  return () => rmSync(TEST_ROOT, { recursive: true, force: true });
}
