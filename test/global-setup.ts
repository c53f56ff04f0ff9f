import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Makes one temporary folder per test run for the tests' files, and removes
 * it after the run. Test workers find it in ONNXREC_TEST_ROOT; a folder per
 * run keeps two runs at once from deleting each other's files.
 */
export default function setup() {
  const root = mkdtempSync(join(tmpdir(), "onnxrec-tests-"));
  process.env.ONNXREC_TEST_ROOT = root;
  return () => rmSync(root, { recursive: true, force: true });
}
