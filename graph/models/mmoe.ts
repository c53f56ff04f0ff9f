/**
 * MMOE, Multi-gate Mixture-of-Experts (Ma et al., KDD 2018), laid out as
 * torch-rechub lays it out: nExpert shared expert MLPs on the embeddings, one
 * softmax gate per task over all experts, and a tower per task ending in
 * Linear(*, 1).
 */
import type { Tensor } from "../builder.js";
import type { ModelContext } from "../layers/context.js";
import { type MlpParams, checkMlpParams, gate, mixExperts, mlp } from "../layers/mlp.js";
import type { Feature } from "./features.js";
import {
  CONCAT_ID,
  type EmbeddedInput,
  type ModelStructure,
  type MultiTaskModel,
  type TaskType,
  checkPositiveInteger,
  checkTaskTypes,
  checkTowers,
  concatenatedWidth,
  gateDetails,
  inputSection,
  mlpDetails,
  structureTaskNames,
  taskLane,
  towerSection,
} from "./model.js";

export interface MmoeOptions {
  features: Feature[];
  taskTypes: TaskType[];
  nExpert: number;
  expertParams: MlpParams;
  /** One tower per task. */
  towerParamsList: MlpParams[];
}

export class MMOE implements MultiTaskModel {
  readonly kind = "mmoe";
  readonly sharedScopes = ["expert"];
  readonly features: Feature[];
  readonly taskTypes: TaskType[];
  readonly nExpert: number;
  readonly expertParams: MlpParams;
  readonly towerParamsList: MlpParams[];

  constructor(options: MmoeOptions) {
    checkTaskTypes("MMOE", options.taskTypes);
    checkPositiveInteger("MMOE: nExpert", options.nExpert);
    checkMlpParams("MMOE: expertParams", options.expertParams);
    checkTowers("MMOE", options.towerParamsList, options.taskTypes.length);
    this.features = options.features;
    this.taskTypes = options.taskTypes;
    this.nExpert = options.nExpert;
    this.expertParams = options.expertParams;
    this.towerParamsList = options.towerParamsList;
  }

  forward(ctx: ModelContext, input: EmbeddedInput): Tensor[] {
    const x = input.concatenated;
    const experts = Array.from({ length: this.nExpert }, (_, k) =>
      mlp(ctx, `expert${k}`, x, input.inputDim, this.expertParams, false),
    );
    const expertDim = this.expertParams.dims[this.expertParams.dims.length - 1];
    return this.towerParamsList.map((params, task) => {
      const weights = gate(ctx, `gate${task}`, x, input.inputDim, this.nExpert);
      return mlp(ctx, `tower${task}`, mixExperts(weights, experts), expertDim, params, true);
    });
  }

  structure(taskNames?: readonly string[]): ModelStructure {
    const names = structureTaskNames("MMOE", this.taskTypes, taskNames);
    const inDim = concatenatedWidth(this.features);
    const expertIds = Array.from({ length: this.nExpert }, (_, k) => `expert${k}`);
    const experts = expertIds.map((id) => ({
      id,
      label: id,
      details: mlpDetails(inDim, this.expertParams, false),
      role: "expert" as const,
      inputs: [CONCAT_ID],
    }));
    const gates = names.map((name, task) => ({
      id: `gate_group${task}`,
      lane: taskLane(name),
      nodes: [{ id: `gate${task}`, label: `gate${task}`, details: gateDetails(inDim, this.nExpert), role: "gate" as const, inputs: expertIds }],
    }));
    const expertDim = this.expertParams.dims[this.expertParams.dims.length - 1];
    const towerInputs = names.map((_, task) => `gate${task}`);
    return {
      title: `MMOE: ${this.nExpert} shared expert${this.nExpert === 1 ? "" : "s"}, ${names.length} tasks with a gate each`,
      sections: [
        inputSection(this.features),
        {
          label: "experts and gates",
          rows: [{ groups: [{ id: "experts", label: "shared experts", nodes: experts }] }, { groups: gates }],
        },
        towerSection(this.taskTypes, names, this.towerParamsList, towerInputs, expertDim),
      ],
    };
  }

  options(): Record<string, unknown> {
    return {
      taskTypes: this.taskTypes,
      nExpert: this.nExpert,
      expertParams: this.expertParams,
      towerParamsList: this.towerParamsList,
    };
  }
}
