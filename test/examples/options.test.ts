import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";

import { parsePurchaseRate } from "../../examples/synthetic/options.ts";

describe("parsePurchaseRate", () => {
  it("reads a share between 0 and 1", () => {
    expect(parsePurchaseRate("0.35")).toBe(0.35);
    expect(parsePurchaseRate("1e-3")).toBe(0.001);
  });

  it.each(["", " ", "abc", "0.5x", "0", "1", "-0.1", "NaN"])("rejects %j", (text) => {
    expect(() => parsePurchaseRate(text)).toThrow(InvalidArgumentError);
  });
});
