import { InvalidArgumentError } from "commander";

/** Parses a command-line share of clicks that are purchased: a number between 0 and 1 exclusive. */
export function parsePurchaseRate(value: string): number {
  const share = Number(value);
  if (value.trim() === "" || !(share > 0 && share < 1)) {
    throw new InvalidArgumentError("expected a number between 0 and 1 exclusive.");
  }
  return share;
}
