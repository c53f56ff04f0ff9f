/** The public API of onnxrec: the model DSL, the graph builder, training and serving entry points. */
export { Graph, Tensor, GraphError } from "./graph/builder.js";
export { grad } from "./graph/autodiff.js";
export { emitModel, toModelProto, OPSET } from "./graph/emit.js";
export * as ops from "./graph/ops/index.js";
export { ModelContext } from "./graph/layers/context.js";
export { mlp, linear, gate, mixExperts, type MlpParams, type Activation } from "./graph/layers/mlp.js";
export { DenseFeature, SparseFeature, PLE, MMOE, SharedBottom, ESMM, createModel, MODEL_KINDS } from "./graph/models/index.js";
export type { Feature, MultiTaskModel, TaskType, PleOptions, MmoeOptions, SharedBottomOptions, EsmmOptions } from "./graph/models/index.js";
export { visualizeModel } from "./graph/visualize.js";
export { renderTrainingCurves } from "./training/curves.js";
export { encodeModel, decodeModel } from "./proto/index.js";
export { FeatureEncoder, FeatureError } from "./training/features.js";
export { ArrowDataset, prepareData, readDatasetInfo } from "./training/data.js";
export { DataLoader } from "./training/loader.js";
export {
  MTLTrainer,
  RESTORE_BEST,
  type RestoreBest,
  type TrainerOptions,
  type EpochLog,
  type TaskScores,
} from "./training/trainer.js";
export { ModelProgram } from "./training/program.js";
export { auc, logLoss, meanSquaredError } from "./training/metrics.js";
export { saveModelDir, loadModelDir, featuresFromEncoder } from "./training/model-dir.js";
export { createApp, loadModel, ModelRepository } from "./serving/app.js";
export { startServer } from "./serving/server.js";
