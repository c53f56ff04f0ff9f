import { describe, expect, it } from "vitest";
import { emitModel } from "../../../graph/emit.js";
import { ESMM } from "../../../graph/models/esmm.js";
import type { SparseFeature } from "../../../graph/models/features.js";
import { MMOE } from "../../../graph/models/mmoe.js";
import type { MultiTaskModel } from "../../../graph/models/model.js";
import { PLE } from "../../../graph/models/ple.js";
import { SharedBottom } from "../../../graph/models/shared-bottom.js";
import { type RegularizationParams, buildTrainingGraph, io, sparseFeatures } from "../../../graph/programs.js";
import { type Feeds, Session, tensor } from "../../../runtime/node.js";
import { RowPlanner } from "../../../training/program.js";
import { initialState } from "../../../training/state.js";
import { mulberry32 } from "../gradcheck.js";
import { referenceFeatures } from "../../fixtures/features.js";

/**
 * Checks the gradient of a model's whole training loss with respect to every
 * dense parameter and every embedding row the batch touches, in float64,
 * against central differences. Ids repeat within the batch, and the session
 * uses 2 intra-op threads, where a scatter-add gradient would go wrong.
 */
async function checkModelGradient(
  model: MultiTaskModel,
  weighting: "equal" | "uwl",
  regularization?: RegularizationParams,
  denseRows = 0,
) {
  const built = buildTrainingGraph(model, {
    lossWeighting: { method: weighting },
    optimizer: {},
    seed: 1,
    dtype: "float64",
    exposeGradients: true,
    regularization,
  });
  const session = await Session.create(emitModel(built.graph, { outputs: built.outputs, inputs: built.inputs }), "ple gradcheck", {
    threads: 2,
  });
  const ctx = built.ctx;
  const state = initialState(ctx.parameters, ctx.totalParameters, ctx.normStates.map((s) => s.channels), sparseFeatures(model), 5);
  const random = mulberry32(9);
  const n = 7;
  const params = Float64Array.from(state.params, (v) => v + 0.1 * (random() - 0.5));
  // UWL weights away from 0, so the check covers exp(-w) at a general point.
  if (weighting === "uwl") params.set([0.3, -0.2], params.length - 2);
  const ids = [
    Int32Array.from([1, 3, 3, 0, 1, 3, 9]),
    Int32Array.from([5, 5, 5, 5, 2, 7, 5]),
    Int32Array.from([100, 4, 999, 4, 100, 4, 0]),
  ];
  const plans = sparseFeatures(model).map((f, k) => new RowPlanner(f.name, f.vocabSize, f.vocabSize <= denseRows).plan(ids[k]));
  const rows = sparseFeatures(model).map((f, k) => Float64Array.from({ length: plans[k].ends.length * f.embedDim }, () => random() - 0.5));
  const nDense = model.features.filter((f) => f.kind === "dense").length;
  const nTask = model.taskTypes.length;
  const dense = Float64Array.from({ length: n * nDense }, () => random());
  // Classification labels are 0 or 1; regression targets lie in [0, 2).
  const labels = Float64Array.from({ length: n * nTask }, (_, i) => {
    const value = random();
    if (model.taskTypes[i % nTask] === "regression") return value * 2;
    return value < 0.5 ? 1 : 0;
  });
  const feeds = (): Feeds => {
    const f: Feeds = {
      [io.params]: tensor(params, [params.length]),
      [io.adamM]: tensor(new Float64Array(params.length), [params.length]),
      [io.adamV]: tensor(new Float64Array(params.length), [params.length]),
      [io.normState]: tensor(Float64Array.from(state.normState), [state.normState.length]),
      [io.lr]: tensor(new Float64Array([0]), []),
      [io.step]: tensor(new Float64Array([1]), []),
      [io.labels]: tensor(labels, [n, nTask]),
    };
    if (nDense > 0) f[io.dense] = tensor(dense, [n, nDense]);
    sparseFeatures(model).forEach((feature, k) => {
      const shape = [plans[k].ends.length, feature.embedDim];
      f[io.rows(k)] = tensor(rows[k], shape);
      f[io.rowsM(k)] = tensor(new Float64Array(rows[k].length), shape);
      f[io.rowsV(k)] = tensor(new Float64Array(rows[k].length), shape);
      f[io.idx(k)] = tensor(plans[k].idx, [n]);
      f[io.order(k)] = tensor(plans[k].order, [n]);
      f[io.ends(k)] = tensor(plans[k].ends, [plans[k].ends.length]);
    });
    return f;
  };
  const result = await session.run(feeds());
  const loss = async () => ((await session.run(feeds(), [io.loss])).loss.data as Float64Array)[0];
  let worst = 0;
  let checked = 0;
  const compare = async (values: Float64Array, analytic: Float64Array) => {
    for (let i = 0; i < values.length; i++) {
      const saved = values[i];
      const h = 1e-6;
      values[i] = saved + h;
      const plus = await loss();
      values[i] = saved - h;
      const minus = await loss();
      values[i] = saved;
      const numeric = (plus - minus) / (2 * h);
      worst = Math.max(worst, Math.abs(numeric - analytic[i]) / Math.max(1e-4, Math.abs(numeric)));
      checked++;
    }
  };
  await compare(params, result.grad_params.data as Float64Array);
  for (let k = 0; k < rows.length; k++) await compare(rows[k], result[`grad_${io.rows(k)}`].data as Float64Array);
  await session.release();
  const groups = ctx.parameters.flatMap((spec) => new Array<string>(spec.size).fill(spec.group));
  const rowGradients = rows.map((_, k) => result[`grad_${io.rows(k)}`].data as Float64Array);
  return { worst, checked, parameters: params.length, params, groups, gradient: result.grad_params.data as Float64Array, rowGradients };
}

const taskTypes: ("classification" | "regression")[] = ["classification", "regression"];
const towerParamsList = [{ dims: [3] }, { dims: [2] }];

function tinyPle() {
  return new PLE({
    features: referenceFeatures(),
    taskTypes,
    nLevel: 2,
    nExpertSpecific: 1,
    nExpertShared: 1,
    expertParams: { dims: [5, 3] },
    towerParamsList,
  });
}

describe("whole-model loss gradients", () => {
  it("PLE with equal weights", async () => {
    const { worst, checked, parameters } = await checkModelGradient(tinyPle(), "equal");
    expect(checked).toBeGreaterThan(parameters);
    expect(worst).toBeLessThan(1e-4);
  });

  it("PLE with whole small tables fed", async () => {
    const { worst, rowGradients } = await checkModelGradient(tinyPle(), "equal", undefined, 10);
    expect(worst).toBeLessThan(1e-4);
    // Feature a (10 rows, width 16) is fed whole; the batch uses rows 0, 1, 3 and 9.
    const used = new Set([0, 1, 3, 9]);
    for (let row = 0; row < 10; row++) {
      const g = rowGradients[0].subarray(row * 16, (row + 1) * 16);
      if (used.has(row)) expect(g.some((v) => v !== 0)).toBe(true);
      else expect(Array.from(g)).toEqual(new Array(16).fill(0));
    }
  });

  it("PLE with UWL", async () => {
    const { worst } = await checkModelGradient(tinyPle(), "uwl");
    expect(worst).toBeLessThan(1e-4);
  });

  it("PLE with L1 and L2 penalties", async () => {
    const penalties = { embeddingL1: 1e-3, embeddingL2: 1e-2, denseL1: 1e-3, denseL2: 1e-2 };
    const penalised = await checkModelGradient(tinyPle(), "equal", penalties);
    expect(penalised.worst).toBeLessThan(1e-4);

    // The penalties add l1 * sign(p) + 2 * l2 * p to each gradient, batch norm parameters excepted.
    const plain = await checkModelGradient(tinyPle(), "equal");
    penalised.params.forEach((p, i) => {
      const extra = penalised.groups[i] === "norm" ? 0 : 1e-3 * Math.sign(p) + 2 * 1e-2 * p;
      expect(penalised.gradient[i] - plain.gradient[i]).toBeCloseTo(extra, 10);
    });
  });

  it("ESMM, through the product of probabilities", async () => {
    const [a, b, c] = referenceFeatures() as SparseFeature[];
    const model = new ESMM({ userFeatures: [a, b], itemFeatures: [c], cvrParams: { dims: [4] }, ctrParams: { dims: [3] } });
    const { worst } = await checkModelGradient(model, "uwl");
    expect(worst).toBeLessThan(1e-4);
  });

  it("MMOE", async () => {
    const model = new MMOE({ features: referenceFeatures(), taskTypes, nExpert: 3, expertParams: { dims: [4] }, towerParamsList });
    const { worst } = await checkModelGradient(model, "equal");
    expect(worst).toBeLessThan(1e-4);
  });

  it("Shared-Bottom", async () => {
    const model = new SharedBottom({ features: referenceFeatures(), taskTypes, bottomParams: { dims: [6] }, towerParamsList });
    const { worst } = await checkModelGradient(model, "equal");
    expect(worst).toBeLessThan(1e-4);
  });
});
