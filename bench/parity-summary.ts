/**
 * Prints the parity bench's tables over the seeds of several bench runs.
 * Each bench run saves its runs beside its report, as shared-runs.json,
 * independent-runs.json and init-runs.json in its --out folder; this joins
 * those of one kind.
 *
 *   npx tsx bench/parity-summary.ts data/parity-a/shared-runs.json data/parity-b/shared-runs.json
 */
import { Command } from "commander";
import { joinRecords, summarize } from "./parity/summary.js";

const program = new Command("parity-summary")
  .argument("<files...>", "comparison files saved by bench/parity.ts (<out>/shared-runs.json and the like)")
  .parse(process.argv);

try {
  for (const line of summarize(await joinRecords(program.args))) console.log(line);
} catch (error) {
  console.error(`parity-summary: ${(error as Error).message}`);
  process.exit(1);
}
