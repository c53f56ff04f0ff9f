/**
 * The host side of a model's training state: the flat parameter vector, its
 * Adam moments, the batch norm running averages and one embedding table (with
 * moments) per sparse feature, all as Float32Arrays.
 */
import type { ParameterSpec } from "../graph/layers/context.js";
import type { SparseFeature } from "../graph/models/features.js";
import { type Init, STREAMS, fill, normalGenerator, streamSeed, uniformGenerator } from "../graph/random.js";
import { type DropoutState, dropoutState } from "./dropout.js";

export interface TrainingState {
  params: Float32Array;
  adamM: Float32Array;
  adamV: Float32Array;
  normState: Float32Array;
  tables: Float32Array[];
  tablesM: Float32Array[];
  tablesV: Float32Array[];
  /** Optimizer steps taken so far. */
  step: number;
  /** State of the generator that draws dropout masks on the host. */
  dropout: DropoutState;
  /** GradNorm's first-step task losses, when GradNorm weights the tasks; zeros until the first step. */
  gradnormInitial?: Float32Array;
  /** MetaBalance's moving averages of gradient norms, task-major, when MetaBalance weights the tasks. */
  balanceNorms?: Float32Array;
}

/**
 * Initialises a state: each parameter by its own init, embedding tables from
 * N(0, initStd), running means 0 and running variances 1, moments 0. The same
 * seed gives the same values.
 */
export function initialState(
  parameters: readonly ParameterSpec[],
  totalParameters: number,
  normChannels: readonly number[],
  sparse: readonly SparseFeature[],
  seed: number,
): TrainingState {
  const uniform = uniformGenerator(streamSeed(seed, STREAMS.initUniform));
  const normal = normalGenerator(streamSeed(seed, STREAMS.initNormal));
  const params = new Float32Array(totalParameters);
  for (const spec of parameters) fill(params.subarray(spec.offset, spec.offset + spec.size), spec.init, uniform, normal);
  const normSize = normChannels.reduce((a, c) => a + 2 * c, 0);
  const normState = new Float32Array(normSize);
  let offset = 0;
  for (const channels of normChannels) {
    normState.fill(1, offset + channels, offset + 2 * channels);
    offset += 2 * channels;
  }
  const tables = sparse.map((f) => {
    const table = new Float32Array(f.vocabSize * f.embedDim);
    const init: Init = { kind: "normal", mean: 0, std: f.initStd };
    fill(table, init, uniform, normal);
    return table;
  });
  return {
    params,
    adamM: new Float32Array(totalParameters),
    adamV: new Float32Array(totalParameters),
    normState,
    tables,
    tablesM: tables.map((t) => new Float32Array(t.length)),
    tablesV: tables.map((t) => new Float32Array(t.length)),
    step: 0,
    dropout: dropoutState(seed ^ 0x3c6ef372),
  };
}

/** Copies a state, so a snapshot is not changed by later steps. */
export function cloneState(state: TrainingState): TrainingState {
  return {
    params: state.params.slice(),
    adamM: state.adamM.slice(),
    adamV: state.adamV.slice(),
    normState: state.normState.slice(),
    tables: state.tables.map((t) => t.slice()),
    tablesM: state.tablesM.map((t) => t.slice()),
    tablesV: state.tablesV.map((t) => t.slice()),
    step: state.step,
    dropout: [...state.dropout],
    gradnormInitial: state.gradnormInitial?.slice(),
    balanceNorms: state.balanceNorms?.slice(),
  };
}
