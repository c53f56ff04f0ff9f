/**
 * ESMM, the Entire Space Multi-Task Model (Ma et al., SIGIR 2018), laid out as
 * torch-rechub lays it out. The concatenated embeddings of the user and item
 * features feed a CVR tower and a CTR tower, each an MLP ending in
 * Linear(*, 1). The tasks are, in order, cvr (sigmoid of the CVR tower), ctr
 * and ctcvr = ctr x cvr. Only ctr and ctcvr train, on the click and purchase
 * labels of every impression. So the CVR tower learns P(purchase | click)
 * over the entire impression space, with no loss on clicked rows alone.
 */
import type { Tensor } from "../builder.js";
import type { ModelContext } from "../layers/context.js";
import { type MlpParams, checkMlpParams, mlp } from "../layers/mlp.js";
import * as op from "../ops/index.js";
import { type Feature, SparseFeature } from "./features.js";
import {
  CONCAT_ID,
  type EmbeddedInput,
  type ModelStructure,
  type MultiTaskModel,
  type TaskHead,
  type TaskType,
  concatenatedWidth,
  inputSection,
  mlpDetails,
  structureTaskNames,
  taskLane,
} from "./model.js";

export interface EsmmOptions {
  userFeatures: SparseFeature[];
  itemFeatures: SparseFeature[];
  cvrParams: MlpParams;
  ctrParams: MlpParams;
}

export class ESMM implements MultiTaskModel {
  readonly kind = "esmm";
  readonly features: Feature[];
  readonly taskTypes: TaskType[] = ["classification", "classification", "classification"];
  readonly userFeatures: SparseFeature[];
  readonly itemFeatures: SparseFeature[];
  readonly cvrParams: MlpParams;
  readonly ctrParams: MlpParams;

  constructor(options: EsmmOptions) {
    for (const key of ["userFeatures", "itemFeatures"] as const) {
      const list = options[key];
      if (!Array.isArray(list) || list.length === 0 || !list.every((f) => f instanceof SparseFeature)) {
        throw new TypeError(`ESMM: ${key} must be a non-empty array of sparse features`);
      }
    }
    checkMlpParams("ESMM: cvrParams", options.cvrParams);
    checkMlpParams("ESMM: ctrParams", options.ctrParams);
    this.userFeatures = options.userFeatures;
    this.itemFeatures = options.itemFeatures;
    this.features = [...options.userFeatures, ...options.itemFeatures];
    this.cvrParams = options.cvrParams;
    this.ctrParams = options.ctrParams;
  }

  forward(ctx: ModelContext, input: EmbeddedInput): TaskHead[] {
    const width = concatenatedWidth(this.features);
    const x = input.concatenated;
    const cvrLogit = mlp(ctx, "tower_cvr", x, width, this.cvrParams, true);
    const ctrLogit = mlp(ctx, "tower_ctr", x, width, this.ctrParams, true);
    const cvr = op.sigmoid(cvrLogit);
    const ctr = op.sigmoid(ctrLogit);
    return [
      { score: cvr, logit: cvrLogit, trains: false },
      { score: ctr, logit: ctrLogit },
      { score: op.mul(ctr, cvr) as Tensor },
    ];
  }

  structure(taskNames?: readonly string[]): ModelStructure {
    const names = structureTaskNames("ESMM", this.taskTypes, taskNames);
    const width = concatenatedWidth(this.features);
    const tower = (id: string, params: MlpParams) => ({
      id,
      label: id,
      details: mlpDetails(width, params, true),
      role: "tower" as const,
      inputs: [CONCAT_ID],
    });
    const output = (task: number, details: string[], inputs: string[]) => ({
      id: `output_group${task}`,
      lane: taskLane(names[task]),
      nodes: [{ id: `output:${names[task]}`, label: names[task], details, role: "output" as const, inputs }],
    });
    return {
      title: "ESMM: CVR and CTR towers over user and item embeddings, trained on CTR and CTCVR",
      sections: [
        inputSection(this.features),
        {
          label: "towers and task outputs",
          rows: [
            {
              groups: [
                { id: "tower_group_cvr", lane: taskLane(names[0]), nodes: [tower("tower_cvr", this.cvrParams)] },
                { id: "tower_group_ctr", lane: taskLane(names[1]), nodes: [tower("tower_ctr", this.ctrParams)] },
              ],
            },
            {
              groups: [
                output(0, ["sigmoid → [N]", "no loss of its own"], ["tower_cvr"]),
                output(1, ["sigmoid → [N]", "BCE on clicks"], ["tower_ctr"]),
                output(2, [`${names[1]} × ${names[0]} → [N]`, "BCE on purchases"], ["tower_cvr", "tower_ctr"]),
              ],
            },
          ],
        },
      ],
    };
  }

  options(): Record<string, unknown> {
    return {
      userFeatures: this.userFeatures.map((f) => f.name),
      itemFeatures: this.itemFeatures.map((f) => f.name),
      cvrParams: this.cvrParams,
      ctrParams: this.ctrParams,
    };
  }
}
