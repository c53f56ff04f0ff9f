/**
 * PLE, Progressive Layered Extraction (Tang et al., RecSys 2020), laid out as
 * torch-rechub lays it out. Each of nLevel extraction levels has
 * nTask * nExpertSpecific task experts and nExpertShared shared experts (MLPs),
 * a softmax gate per task over its own and the shared experts, and, below the
 * last level, a shared gate over all experts whose output feeds the next
 * level's shared experts. A tower MLP ending in Linear(*, 1) sits on each
 * task's last-level output.
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
  type StructureGroup,
  type StructureNode,
  type StructureSection,
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

export interface PleOptions {
  features: Feature[];
  taskTypes: TaskType[];
  nLevel: number;
  nExpertSpecific: number;
  nExpertShared: number;
  expertParams: MlpParams;
  /** One tower per task. */
  towerParamsList: MlpParams[];
}

export class PLE implements MultiTaskModel {
  readonly kind = "ple";
  readonly sharedScopes = ["cgc"];
  readonly features: Feature[];
  readonly taskTypes: TaskType[];
  readonly nLevel: number;
  readonly nExpertSpecific: number;
  readonly nExpertShared: number;
  readonly expertParams: MlpParams;
  readonly towerParamsList: MlpParams[];

  constructor(options: PleOptions) {
    checkTaskTypes("PLE", options.taskTypes);
    checkPositiveInteger("PLE: nLevel", options.nLevel);
    checkPositiveInteger("PLE: nExpertSpecific", options.nExpertSpecific, 0);
    checkPositiveInteger("PLE: nExpertShared", options.nExpertShared, 0);
    if (options.nExpertSpecific + options.nExpertShared === 0) {
      throw new RangeError("PLE: nExpertSpecific + nExpertShared must be at least 1, got 0");
    }
    checkMlpParams("PLE: expertParams", options.expertParams);
    checkTowers("PLE", options.towerParamsList, options.taskTypes.length);
    this.features = options.features;
    this.taskTypes = options.taskTypes;
    this.nLevel = options.nLevel;
    this.nExpertSpecific = options.nExpertSpecific;
    this.nExpertShared = options.nExpertShared;
    this.expertParams = options.expertParams;
    this.towerParamsList = options.towerParamsList;
  }

  get nTask(): number {
    return this.taskTypes.length;
  }

  forward(ctx: ModelContext, input: EmbeddedInput): Tensor[] {
    const expertDim = this.expertParams.dims[this.expertParams.dims.length - 1];
    // One input per task, then the shared input. Every input of the first level is the embeddings.
    let inputs: Tensor[] = new Array(this.nTask + 1).fill(input.concatenated);
    let inDim = input.inputDim;
    for (let level = 0; level < this.nLevel; level++) {
      inputs = ctx.scope(`cgc${level}`, () => this.extractionLevel(ctx, level, inputs, inDim));
      inDim = expertDim;
    }
    return this.towerParamsList.map((params, task) => mlp(ctx, `tower${task}`, inputs[task], expertDim, params, true));
  }

  /** Builds one customized gate control (CGC) level: nTask task outputs, plus the shared output below the last level. */
  private extractionLevel(ctx: ModelContext, level: number, inputs: Tensor[], inDim: number): Tensor[] {
    const specific: Tensor[][] = [];
    for (let task = 0; task < this.nTask; task++) {
      const experts: Tensor[] = [];
      for (let k = 0; k < this.nExpertSpecific; k++) {
        const index = task * this.nExpertSpecific + k;
        experts.push(mlp(ctx, `expert_specific${index}`, inputs[task], inDim, this.expertParams, false));
      }
      specific.push(experts);
    }
    const shared: Tensor[] = [];
    for (let k = 0; k < this.nExpertShared; k++) {
      shared.push(mlp(ctx, `expert_shared${k}`, inputs[this.nTask], inDim, this.expertParams, false));
    }
    const outputs: Tensor[] = [];
    for (let task = 0; task < this.nTask; task++) {
      const weights = gate(ctx, `gate_specific${task}`, inputs[task], inDim, this.nExpertSpecific + this.nExpertShared);
      outputs.push(mixExperts(weights, [...specific[task], ...shared]));
    }
    if (level < this.nLevel - 1) {
      const all = [...specific.flat(), ...shared];
      const weights = gate(ctx, "gate_shared", inputs[this.nTask], inDim, all.length);
      outputs.push(mixExperts(weights, all));
    }
    return outputs;
  }

  structure(taskNames?: readonly string[]): ModelStructure {
    const names = structureTaskNames("PLE", this.taskTypes, taskNames);
    const expertDim = this.expertParams.dims[this.expertParams.dims.length - 1];
    const sections: StructureSection[] = [inputSection(this.features)];
    // What each task's experts read, then what the shared experts read, as in forward().
    let inputs: string[] = new Array(this.nTask + 1).fill(CONCAT_ID);
    let inDim = concatenatedWidth(this.features);
    for (let level = 0; level < this.nLevel; level++) {
      const scope = `cgc${level}`;
      const expert = (name: string, input: string): StructureNode => ({
        id: `${scope}.${name}`,
        label: name,
        details: mlpDetails(inDim, this.expertParams, false),
        role: "expert",
        inputs: [input],
      });
      const specific = names.map((_, task) =>
        Array.from({ length: this.nExpertSpecific }, (_, k) => expert(`expert_specific${task * this.nExpertSpecific + k}`, inputs[task])),
      );
      const shared = Array.from({ length: this.nExpertShared }, (_, k) => expert(`expert_shared${k}`, inputs[this.nTask]));
      const expertGroups: StructureGroup[] = names
        .map((name, task): StructureGroup => ({
          id: `${scope}.experts_${task}`,
          label: `${name} experts`,
          lane: taskLane(name),
          nodes: specific[task],
        }))
        .filter((group) => group.nodes.length > 0);
      if (shared.length > 0) {
        expertGroups.push({ id: `${scope}.experts_shared`, label: "shared experts", lane: "shared", nodes: shared });
      }
      const ids = (nodes: StructureNode[]) => nodes.map((node) => node.id);
      const gateGroups: StructureGroup[] = names.map((name, task) => ({
        id: `${scope}.gates_${task}`,
        lane: taskLane(name),
        nodes: [
          {
            id: `${scope}.gate_specific${task}`,
            label: `gate_specific${task}`,
            details: gateDetails(inDim, this.nExpertSpecific + this.nExpertShared),
            role: "gate",
            inputs: [...ids(specific[task]), ...ids(shared)],
          },
        ],
      }));
      if (level < this.nLevel - 1) {
        const all = [...specific.flat(), ...shared];
        gateGroups.push({
          id: `${scope}.gates_shared`,
          lane: "shared",
          nodes: [{ id: `${scope}.gate_shared`, label: "gate_shared", details: gateDetails(inDim, all.length), role: "gate", inputs: ids(all) }],
        });
      }
      sections.push({
        label: `${scope}: extraction level ${level + 1} of ${this.nLevel}`,
        rows: [{ groups: expertGroups }, { groups: gateGroups }],
      });
      inputs = gateGroups.map((group) => group.nodes[0].id);
      inDim = expertDim;
    }
    sections.push(towerSection(this.taskTypes, names, this.towerParamsList, inputs.slice(0, this.nTask), expertDim));
    const title =
      `PLE: ${this.nLevel} extraction level${this.nLevel === 1 ? "" : "s"}, ${this.nTask} tasks, ` +
      `${this.nExpertSpecific} task expert${this.nExpertSpecific === 1 ? "" : "s"} per task and ` +
      `${this.nExpertShared} shared expert${this.nExpertShared === 1 ? "" : "s"} per level`;
    return { title, sections };
  }

  options(): Record<string, unknown> {
    return {
      taskTypes: this.taskTypes,
      nLevel: this.nLevel,
      nExpertSpecific: this.nExpertSpecific,
      nExpertShared: this.nExpertShared,
      expertParams: this.expertParams,
      towerParamsList: this.towerParamsList,
    };
  }
}
