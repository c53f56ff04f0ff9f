/**
 * Shared-Bottom (Caruana, 1997): one bottom MLP shared by every task, then a
 * tower per task ending in Linear(*, 1), laid out as torch-rechub lays it out.
 */
import type { Tensor } from "../builder.js";
import type { ModelContext } from "../layers/context.js";
import { type MlpParams, checkMlpParams, mlp } from "../layers/mlp.js";
import type { Feature } from "./features.js";
import {
  CONCAT_ID,
  type EmbeddedInput,
  type ModelStructure,
  type MultiTaskModel,
  type TaskType,
  checkTaskTypes,
  checkTowers,
  concatenatedWidth,
  inputSection,
  mlpDetails,
  structureTaskNames,
  towerSection,
} from "./model.js";

export interface SharedBottomOptions {
  features: Feature[];
  taskTypes: TaskType[];
  bottomParams: MlpParams;
  /** One tower per task. */
  towerParamsList: MlpParams[];
}

export class SharedBottom implements MultiTaskModel {
  readonly kind = "shared-bottom";
  readonly sharedScopes = ["bottom"];
  readonly features: Feature[];
  readonly taskTypes: TaskType[];
  readonly bottomParams: MlpParams;
  readonly towerParamsList: MlpParams[];

  constructor(options: SharedBottomOptions) {
    checkTaskTypes("SharedBottom", options.taskTypes);
    checkMlpParams("SharedBottom: bottomParams", options.bottomParams);
    checkTowers("SharedBottom", options.towerParamsList, options.taskTypes.length);
    this.features = options.features;
    this.taskTypes = options.taskTypes;
    this.bottomParams = options.bottomParams;
    this.towerParamsList = options.towerParamsList;
  }

  forward(ctx: ModelContext, input: EmbeddedInput): Tensor[] {
    const bottom = mlp(ctx, "bottom", input.concatenated, input.inputDim, this.bottomParams, false);
    const bottomDim = this.bottomParams.dims[this.bottomParams.dims.length - 1];
    return this.towerParamsList.map((params, task) => mlp(ctx, `tower${task}`, bottom, bottomDim, params, true));
  }

  structure(taskNames?: readonly string[]): ModelStructure {
    const names = structureTaskNames("SharedBottom", this.taskTypes, taskNames);
    const bottom = {
      id: "bottom",
      label: "bottom",
      details: mlpDetails(concatenatedWidth(this.features), this.bottomParams, false),
      role: "mlp" as const,
      inputs: [CONCAT_ID],
    };
    const bottomDim = this.bottomParams.dims[this.bottomParams.dims.length - 1];
    return {
      title: `Shared-Bottom: one bottom MLP, ${names.length} task towers`,
      sections: [
        inputSection(this.features),
        { label: "shared bottom", rows: [{ groups: [{ id: "bottom_group", nodes: [bottom] }] }] },
        towerSection(this.taskTypes, names, this.towerParamsList, names.map(() => "bottom"), bottomDim),
      ],
    };
  }

  options(): Record<string, unknown> {
    return { taskTypes: this.taskTypes, bottomParams: this.bottomParams, towerParamsList: this.towerParamsList };
  }
}
