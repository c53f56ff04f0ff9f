import { describe, expect, it } from "vitest";

import {
  FeatureEncoder,
  FeatureError,
  MISSING_ID,
  SpecError,
  UNSEEN_ID,
  buildVocabularies,
  describeValue,
  parseFeatureSpecs,
  parseLabelSpecs,
  rankVocabulary,
  type FeatureSpec,
} from "../../training/features.js";

const features: FeatureSpec[] = [
  { kind: "sparse", name: "user", embedDim: 4 },
  { kind: "dense", name: "price" },
  { kind: "sparse", name: "item", embedDim: 8 },
  { kind: "dense", name: "age", fill: 30 },
];

function makeEncoder(): FeatureEncoder {
  return new FeatureEncoder({
    features,
    vocabularies: { user: ["u1", "u2", "5"], item: ["a", "1"] },
  });
}

/** Runs `action`, expects a FeatureError and returns it. */
function catchFeatureError(action: () => unknown): FeatureError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(FeatureError);
    return error as FeatureError;
  }
  throw new Error("expected a FeatureError, but nothing was thrown");
}

describe("buildVocabularies", () => {
  it("orders values by descending count", () => {
    const columns: Record<string, (string | null)[]> = { user: ["b", "a", "a", "c", "a", "c"], item: [] };
    const vocabularies = buildVocabularies(features, (name) => columns[name]);
    expect(vocabularies.user).toEqual(["a", "c", "b"]);
    expect(vocabularies.item).toEqual([]);
  });

  it("breaks ties by first appearance", () => {
    const columns: Record<string, string[]> = { user: ["z", "y", "x", "y", "z", "x"], item: ["q", "p"] };
    const vocabularies = buildVocabularies(features, (name) => columns[name]);
    expect(vocabularies.user).toEqual(["z", "y", "x"]);
    expect(vocabularies.item).toEqual(["q", "p"]);
  });

  it("skips null and empty values", () => {
    const columns: Record<string, (string | null)[]> = { user: [null, "", "a", null], item: [""] };
    const vocabularies = buildVocabularies(features, (name) => columns[name]);
    expect(vocabularies.user).toEqual(["a"]);
    expect(vocabularies.item).toEqual([]);
  });

  it("drops values rarer than minCount", () => {
    const spec: FeatureSpec[] = [{ kind: "sparse", name: "user", embedDim: 2, minCount: 2 }];
    const vocabularies = buildVocabularies(spec, () => ["a", "b", "b", "c", "c", "c", "d"]);
    expect(vocabularies.user).toEqual(["c", "b"]);
  });

  it("asks only for sparse columns", () => {
    const asked: string[] = [];
    buildVocabularies(features, (name) => {
      asked.push(name);
      return [];
    });
    expect(asked).toEqual(["user", "item"]);
  });

  it("keeps a feature named __proto__ as a key", () => {
    const spec: FeatureSpec[] = [{ kind: "sparse", name: "__proto__", embedDim: 2 }];
    const vocabularies = buildVocabularies(spec, () => ["a"]);
    expect(Object.hasOwn(vocabularies, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(vocabularies)).toBe(Object.prototype);
  });
});

describe("rankVocabulary", () => {
  it("rejects mismatched lengths", () => {
    expect(() => rankVocabulary(["a"], [1, 2])).toThrow(RangeError);
  });
});

describe("FeatureEncoder ids", () => {
  it("maps vocabulary values from id 2", () => {
    const encoder = makeEncoder();
    expect(encoder.encodeSparseValue("user", "u1")).toBe(2);
    expect(encoder.encodeSparseValue("user", "u2")).toBe(3);
    expect(encoder.encodeSparseValue("item", "1")).toBe(3);
  });

  it("maps unseen values to id 0", () => {
    expect(makeEncoder().encodeSparseValue("user", "nobody")).toBe(UNSEEN_ID);
  });

  it("maps null and empty strings to id 1", () => {
    const encoder = makeEncoder();
    expect(encoder.encodeSparseValue("user", null)).toBe(MISSING_ID);
    expect(encoder.encodeSparseValue("user", "")).toBe(MISSING_ID);
  });

  it("treats 5 and '5' as one value", () => {
    const encoder = makeEncoder();
    expect(encoder.encodeSparseValue("user", 5)).toBe(4);
    expect(encoder.encodeSparseValue("user", "5")).toBe(4);
  });

  it("formats numbers with String()", () => {
    const encoder = makeEncoder();
    // JSON.parse("1.0") is the number 1, which formats as "1".
    expect(encoder.encodeSparseValue("item", JSON.parse("1.0"))).toBe(3);
    expect(encoder.encodeSparseValue("item", "1.0")).toBe(UNSEEN_ID);
  });

  it("reports vocabulary sizes", () => {
    const encoder = makeEncoder();
    expect(encoder.vocabSize("user")).toBe(5);
    expect(encoder.vocabSize("item")).toBe(4);
    expect(encoder.vocabulary("item")).toEqual(["a", "1"]);
  });

  it("lists names in spec order", () => {
    const encoder = makeEncoder();
    expect(encoder.sparseNames).toEqual(["user", "item"]);
    expect(encoder.denseNames).toEqual(["price", "age"]);
  });

  it("rejects unknown sparse feature names", () => {
    const encoder = makeEncoder();
    expect(() => encoder.vocabSize("price")).toThrow(/Unknown sparse feature "price"; sparse features are: user, item/);
    expect(() => encoder.encodeSparseValue("nope", "a")).toThrow(RangeError);
  });
});

describe("FeatureEncoder.encodeRows", () => {
  it("writes row-major sparse ids and dense values", () => {
    const encoded = makeEncoder().encodeRows([
      { user: "u2", price: 1.5, item: "a", age: 41 },
      { user: "zzz", price: -2, item: null, age: null, extra: "ignored" },
    ]);
    expect(encoded.size).toBe(2);
    expect([...encoded.sparseIds]).toEqual([3, 2, 0, 1]);
    expect([...encoded.dense]).toEqual([1.5, 41, -2, 30]);
  });

  it("fills null dense values with 0 by default", () => {
    const encoded = makeEncoder().encodeRows([{ user: null, price: null, item: null, age: 1 }]);
    expect([...encoded.dense]).toEqual([0, 1]);
  });

  it("returns empty arrays for no rows", () => {
    const encoded = makeEncoder().encodeRows([]);
    expect(encoded.size).toBe(0);
    expect(encoded.sparseIds.length).toBe(0);
    expect(encoded.dense.length).toBe(0);
  });

  it("rejects an absent key", () => {
    const error = catchFeatureError(() =>
      makeEncoder().encodeRows([
        { user: "u1", price: 1, item: "a", age: 2 },
        { user: "u1", item: "a", age: 2 },
      ]),
    );
    expect(error.message).toBe('Invalid row 1: missing field "price" (expected a finite number or null)');
    expect(error.row).toBe(1);
    expect(error.field).toBe("price");
    expect(error.value).toBeUndefined();
    expect(error.expected).toBe("a finite number or null");
  });

  it("rejects an undefined value", () => {
    const error = catchFeatureError(() => makeEncoder().encodeRows([{ user: undefined, price: 1, item: "a", age: 2 }]));
    expect(error.message).toBe(
      'Invalid row 0, field "user": expected a string, a finite number or null, got undefined',
    );
  });

  it("rejects a boolean sparse value", () => {
    const error = catchFeatureError(() => makeEncoder().encodeRows([{ user: true, price: 1, item: "a", age: 2 }]));
    expect(error.message).toBe('Invalid row 0, field "user": expected a string, a finite number or null, got true');
    expect(error.value).toBe(true);
  });

  it("rejects an object sparse value", () => {
    const error = catchFeatureError(() =>
      makeEncoder().encodeRows([{ user: { id: 1 }, price: 1, item: "a", age: 2 }]),
    );
    expect(error.message).toContain('got {"id":1}');
  });

  it("rejects a numeric string dense value", () => {
    const error = catchFeatureError(() => makeEncoder().encodeRows([{ user: "u1", price: "1.5", item: "a", age: 2 }]));
    expect(error.message).toBe('Invalid row 0, field "price": expected a finite number or null, got "1.5"');
  });

  it("rejects NaN and Infinity", () => {
    const encoder = makeEncoder();
    const cases: [Record<string, unknown>, string, string][] = [
      [{ user: Number.NaN, price: 1, item: "a", age: 2 }, "user", "NaN"],
      [{ user: "u1", price: Number.POSITIVE_INFINITY, item: "a", age: 2 }, "price", "Infinity"],
      [{ user: "u1", price: 1, item: Number.NEGATIVE_INFINITY, age: 2 }, "item", "-Infinity"],
      [{ user: "u1", price: 1, item: "a", age: Number.NaN }, "age", "NaN"],
    ];
    for (const [row, field, shown] of cases) {
      const error = catchFeatureError(() => encoder.encodeRows([row]));
      expect(error.field).toBe(field);
      expect(error.message).toContain(`field "${field}"`);
      expect(error.message).toMatch(new RegExp(`got ${shown}$`));
    }
  });

  it("rejects dense values beyond float32 range", () => {
    const error = catchFeatureError(() => makeEncoder().encodeRows([{ user: "u1", price: 1e39, item: "a", age: 2 }]));
    expect(error.message).toContain("within float32 range");
    expect(error.message).toContain("got 1e+39");
  });

  it("rejects rows that are not plain objects", () => {
    const encoder = makeEncoder();
    const cases: [unknown, string][] = [
      [null, "null"],
      [[1, 2], "[1,2]"],
      ["user", '"user"'],
      [7, "7"],
      [new Map([["user", "u1"]]), "{}"],
    ];
    for (const [row, shown] of cases) {
      const error = catchFeatureError(() => encoder.encodeRows([row]));
      expect(error.message).toBe(`Invalid row 0: expected an object with one key per feature, got ${shown}`);
      expect(error.row).toBe(0);
      expect(error.field).toBeNull();
    }
  });

  it("rejects rows that are not an array", () => {
    const error = catchFeatureError(() => makeEncoder().encodeRows({ user: "u1" } as unknown as unknown[]));
    expect(error.message).toBe('Invalid rows: expected an array of row objects, got {"user":"u1"}');
    expect(error.row).toBeNull();
  });

  it("ignores inherited keys", () => {
    const inherited = Object.create({ user: "u1", price: 1, item: "a", age: 2 }) as Record<string, unknown>;
    const error = catchFeatureError(() => makeEncoder().encodeRows([inherited]));
    expect(error.message).toMatch(/^Invalid row 0: expected an object/);
  });

  it("ignores a __proto__ key from JSON", () => {
    const rows = JSON.parse('[{"__proto__": {"price": 5}, "user": "u1", "item": "a", "age": 2}]') as unknown[];
    const error = catchFeatureError(() => makeEncoder().encodeRows(rows));
    expect(error.message).toBe('Invalid row 0: missing field "price" (expected a finite number or null)');
  });

  it("encodes rows with a __proto__ key", () => {
    const rows = JSON.parse('[{"__proto__": 1, "user": "u1", "price": 3, "item": "a", "age": 2}]') as unknown[];
    const encoded = makeEncoder().encodeRows(rows);
    expect([...encoded.sparseIds]).toEqual([2, 2]);
    expect([...encoded.dense]).toEqual([3, 2]);
  });

  it("does not find constructor on Object.prototype", () => {
    const encoder = new FeatureEncoder({
      features: [{ kind: "sparse", name: "constructor", embedDim: 2 }],
      vocabularies: { constructor: ["x"] },
    });
    const error = catchFeatureError(() => encoder.encodeRows([{}]));
    expect(error.message).toBe(
      'Invalid row 0: missing field "constructor" (expected a string, a finite number or null)',
    );
    expect([...encoder.encodeRows([{ constructor: "x" }]).sparseIds]).toEqual([2]);
  });

  it("encodes a feature named __proto__", () => {
    const encoder = new FeatureEncoder({
      features: [{ kind: "sparse", name: "__proto__", embedDim: 2 }],
      vocabularies: JSON.parse('{"__proto__": ["x"]}') as Record<string, string[]>,
    });
    const rows = JSON.parse('[{"__proto__": "x"}, {"__proto__": null}]') as unknown[];
    expect([...encoder.encodeRows(rows).sparseIds]).toEqual([2, 1]);
  });

  it("accepts null-prototype rows", () => {
    const row = Object.assign(Object.create(null) as Record<string, unknown>, {
      user: "u1",
      price: 1,
      item: "a",
      age: 2,
    });
    expect(makeEncoder().encodeRows([row]).size).toBe(1);
  });

  it("truncates long values in messages", () => {
    const long = "x".repeat(500);
    const error = catchFeatureError(() => makeEncoder().encodeRows([{ user: "u1", price: long, item: "a", age: 2 }]));
    expect(error.message.length).toBeLessThan(200);
    expect(error.message).toMatch(/got "x+\.\.\.$/);
    expect(error.value).toBe(long);
  });
});

describe("describeValue", () => {
  it("spells out values JSON cannot show", () => {
    expect(describeValue(Number.NaN)).toBe("NaN");
    expect(describeValue(undefined)).toBe("undefined");
    expect(describeValue(10n)).toBe("10n");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(describeValue(cyclic)).toBe("[object Object]");
  });
});

describe("FeatureEncoder JSON", () => {
  it("round-trips through JSON text", () => {
    const encoder = makeEncoder();
    const copy = FeatureEncoder.fromJSON(JSON.parse(JSON.stringify(encoder)));
    expect(copy.toJSON()).toEqual(encoder.toJSON());
    expect(copy.encodeSparseValue("user", "5")).toBe(4);
  });

  it("keeps optional spec fields", () => {
    const json = makeEncoder().toJSON();
    expect(json.features[3]).toEqual({ kind: "dense", name: "age", fill: 30 });
    expect(json.vocabularies).toEqual({ user: ["u1", "u2", "5"], item: ["a", "1"] });
  });

  it("rejects invalid input", () => {
    const valid = makeEncoder().toJSON();
    const cases: [unknown, RegExp][] = [
      [null, /Invalid feature encoder: expected an object, got null/],
      [{ features: valid.features }, /missing "vocabularies"/],
      [{ ...valid, features: "x" }, /expected an array of features/],
      [{ ...valid, vocabularies: { user: ["u1"] } }, /missing the vocabulary of sparse feature "item"/],
      [{ ...valid, vocabularies: { ...valid.vocabularies, price: [] } }, /"price" is not a sparse feature/],
      [{ ...valid, vocabularies: { ...valid.vocabularies, user: ["a", "a"] } }, /duplicate value "a"/],
      [{ ...valid, vocabularies: { ...valid.vocabularies, user: ["a", ""] } }, /entry 1 must be a non-empty string/],
      [{ ...valid, vocabularies: { ...valid.vocabularies, user: [3] } }, /entry 0 must be a non-empty string, got 3/],
    ];
    for (const [input, message] of cases) {
      expect(() => FeatureEncoder.fromJSON(input)).toThrow(message);
    }
  });
});

describe("parseFeatureSpecs", () => {
  it("rejects invalid specs", () => {
    const cases: [unknown, RegExp][] = [
      [[], /at least one feature/],
      [[{ kind: "sparse", name: "a", embedDim: 0 }], /"embedDim" to be a positive integer, got 0/],
      [[{ kind: "sparse", name: "a", embedDim: 2, minCount: 1.5 }], /"minCount" to be a positive integer/],
      [[{ kind: "dense", name: "a", fill: Number.NaN }], /"fill" to be a finite float32 number, got NaN/],
      [[{ kind: "dense", name: "a", embedDim: 4 }], /unknown key "embedDim"/],
      [[{ kind: "wide", name: "a" }], /"kind" to be "dense" or "sparse", got "wide"/],
      [[{ kind: "dense", name: "" }], /"name" to be a non-empty string/],
      [
        [
          { kind: "dense", name: "a" },
          { kind: "sparse", name: "a", embedDim: 2 },
        ],
        /duplicate feature name "a"/,
      ],
    ];
    for (const [input, message] of cases) {
      expect(() => parseFeatureSpecs(input)).toThrow(message);
    }
  });

  it("throws SpecError", () => {
    expect(() => parseFeatureSpecs("x")).toThrow(SpecError);
  });

  it("names every bad feature, one per line", () => {
    const specs = [{ kind: "dense", name: "" }, { kind: "dense", name: "b" }, { kind: "sparse", name: "c" }];
    expect(() => parseFeatureSpecs(specs)).toThrow(
      'Invalid feature 0: expected "name" to be a non-empty string, got ""\n' +
        'Invalid feature "c": expected "embedDim" to be a positive integer, got undefined',
    );
  });
});

describe("parseLabelSpecs", () => {
  it("rejects invalid specs", () => {
    const cases: [unknown, RegExp][] = [
      [[], /at least one label/],
      [[{ task: "ctr", column: "click", type: "binary" }], /"type" to be "classification" or "regression"/],
      [
        [
          { task: "ctr", column: "click", type: "classification" },
          { task: "ctr", column: "buy", type: "classification" },
        ],
        /duplicate task "ctr"/,
      ],
    ];
    for (const [input, message] of cases) {
      expect(() => parseLabelSpecs(input)).toThrow(message);
    }
  });
});
