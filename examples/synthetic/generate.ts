/**
 * Writes synthetic Ali-CCP-shaped data with known click and purchase
 * probabilities and prints its label rates, oracle AUCs and vocabularies.
 *
 *   npx tsx examples/synthetic/generate.ts --rows 200000 --seed 1 [--purchase-rate 0.35] --out data/synthetic.csv
 */
import { Command, InvalidArgumentError } from "commander";

import {
  DEFAULT_PURCHASE_RATE,
  EFFECT_GROUPS,
  SPARSE_COLUMNS,
  effectBreakdown,
  generateAliCcp,
  generateRows,
  type OracleAucs,
} from "./aliccp.ts";
import { parsePurchaseRate } from "./options.ts";

function parseInteger(value: string, max: number): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > max) {
    throw new InvalidArgumentError(`expected an integer from 0 to ${max}.`);
  }
  return parsed;
}

const program = new Command()
  .name("generate")
  .description("Write synthetic Ali-CCP-shaped CSV data whose true click and purchase probabilities are known.")
  .option("--rows <count>", "number of rows to write", (value) => parseInteger(value, Number.MAX_SAFE_INTEGER), 200_000)
  .option("--seed <integer>", "random seed, from 0 to 4294967295. The same seed writes the same file", (value) => parseInteger(value, 0xffffffff), 1)
  .option("--purchase-rate <share>", "share of clicks that are purchased, between 0 and 1", parsePurchaseRate, DEFAULT_PURCHASE_RATE)
  .option("--out <path>", "output CSV file", "data/synthetic.csv")
  .option(
    "--breakdown",
    "also print the oracle AUCs with each effect group removed (generates the rows again, in memory)",
  )
  .parse();

const options = program.opts<{ rows: number; seed: number; purchaseRate: number; out: string; breakdown?: boolean }>();

try {
  const started = performance.now();
  const summary = await generateAliCcp({
    rows: options.rows,
    seed: options.seed,
    purchaseRate: options.purchaseRate,
    outPath: options.out,
  });
  const seconds = (performance.now() - started) / 1000;

  const percent = (value: number): string => `${(100 * value).toFixed(2)}%`;
  console.log(`wrote ${summary.rows} rows to ${options.out} in ${seconds.toFixed(2)} s (seed ${options.seed})`);
  console.log(`click rate:               ${percent(summary.clickRate)} (${summary.clicks} clicks)`);
  console.log(`purchase rate of clicks:  ${percent(summary.purchaseRate)} (${summary.purchases} purchases)`);
  console.log(`oracle AUC, ctr:          ${summary.oracleAuc.ctr.toFixed(4)} (click vs p_click, all rows)`);
  console.log(`oracle AUC, cvr:          ${summary.oracleAuc.cvr.toFixed(4)} (purchase vs p_purchase, all rows)`);
  console.log("distinct values per sparse column:");
  for (const column of SPARSE_COLUMNS) console.log(`  ${column.padEnd(8)} ${summary.distinctValues[column]}`);

  if (options.breakdown) {
    const breakdown = effectBreakdown(generateRows(options.rows, options.seed, { withTerms: true, purchaseRate: options.purchaseRate }));
    const format = (name: string, aucs: OracleAucs): string =>
      `  ${name.padEnd(16)} ${aucs.ctr.toFixed(4)}  ${aucs.cvr.toFixed(4)}  ${aucs.buyGivenClick.toFixed(4)}`;
    console.log("oracle AUC with one effect group removed (ctr, cvr over all rows, purchase given click):");
    console.log(format("none removed", breakdown.full));
    for (const group of EFFECT_GROUPS) console.log(format(group, breakdown.without[group]));
  }
} catch (error) {
  console.error(`generate: failed to write ${options.out}: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
